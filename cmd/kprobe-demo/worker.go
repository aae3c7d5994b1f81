package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sys/unix"
)

// validateRounds of hashing a 64 KiB payment record is the fixed CPU work of one
// validation (a couple of ms): fixed work, not time, so a CPU hog visibly stretches it.
const validateRounds = 48

// worker processes settlements on its locked OS thread.
type worker struct {
	cfg    config
	tracer trace.Tracer
	st     *storage
	conn   net.Conn
	reply  *bufio.Reader
	stdout io.Writer
	tid    int
	cpu    int // the CPU the worker is pinned to, -1 when not pinned
	record []byte
}

func newWorker(ctx context.Context, cfg config, tracer trace.Tracer, st *storage, peerAddr string, stdout io.Writer) (*worker, error) {
	w := &worker{cfg: cfg, tracer: tracer, st: st, stdout: stdout, tid: unix.Gettid(), cpu: -1,
		record: make([]byte, 64<<10)}
	if cfg.incident == incidentCPUHog {
		cpu, err := pinToOneCPU()
		if err != nil {
			return nil, err
		}
		w.cpu = cpu
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", peerAddr)
	if err != nil {
		return nil, fmt.Errorf("connecting to the clearing peer: %w", err)
	}
	w.conn, w.reply = conn, bufio.NewReader(conn)
	return w, nil
}

func (w *worker) close() { w.conn.Close() }

func (w *worker) run(ctx context.Context) error {
	var tick *time.Ticker
	if w.cfg.rate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / w.cfg.rate))
		defer tick.Stop()
	}
	for i := range w.cfg.settlements {
		if i > 0 && tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		id := w.cfg.firstSettlement + i
		payments := make([]string, w.cfg.payments)
		for j := range payments {
			payments[j] = "PAY-" + strconv.Itoa(w.cfg.firstPayment+i*w.cfg.payments+j)
		}
		incident := ""
		if w.cfg.incident != incidentNone && id == w.cfg.incidentSettlement {
			incident = w.cfg.incident
		}
		start := time.Now()
		traceID, err := w.settle(ctx, id, payments, incident)
		if err != nil {
			return fmt.Errorf("settlement %d: %w", id, err)
		}
		line := fmt.Sprintf("settlement=%d payments=%d duration_ms=%.1f", id, len(payments),
			float64(time.Since(start).Microseconds())/1000)
		if traceID != "" {
			line += " trace_id=" + traceID
		}
		if incident != "" {
			line += " incident=" + incident
		}
		if _, err := fmt.Fprintln(w.stdout, line); err != nil {
			return fmt.Errorf("writing summary: %w", err)
		}
	}
	return nil
}

// settle is one settlement.process span: validate each payment, write the ledger,
// confirm with the clearing peer.
func (w *worker) settle(ctx context.Context, id int, payments []string, incident string) (traceID string, err error) {
	tidAttr := semconv.ThreadID(w.tid)
	ctx, sp := w.tracer.Start(ctx, "settlement.process", trace.WithAttributes(
		attribute.String("settlement.id", strconv.Itoa(id)),
		attribute.Int("payment.count", len(payments)),
		tidAttr,
	))
	defer func() {
		if err != nil {
			sp.RecordError(err)
			sp.SetStatus(codes.Error, err.Error())
		}
		sp.End()
	}()
	if incident != "" {
		sp.SetAttributes(attribute.String("kprobe.demo.incident", incident))
	}
	if incident == incidentCPUHog {
		stop, err := startHogs(w.cpu, hogThreads)
		if err != nil {
			return "", err
		}
		defer stop()
	}

	for _, pay := range payments {
		if err := w.validate(ctx, pay, incident == incidentMemoryPressure, tidAttr); err != nil {
			return "", err
		}
	}
	if err := w.ledgerWrite(ctx, id, payments, incident == incidentSlowStorage, tidAttr); err != nil {
		return "", err
	}
	if err := w.confirm(ctx, id, len(payments), tidAttr); err != nil {
		return "", err
	}
	if !sp.SpanContext().IsValid() {
		return "", nil // export disabled
	}
	return sp.SpanContext().TraceID().String(), nil
}

func (w *worker) validate(ctx context.Context, payment string, memoryPressure bool, tid attribute.KeyValue) error {
	_, sp := w.tracer.Start(ctx, "payment.validate", trace.WithAttributes(attribute.String("payment.id", payment), tid))
	defer sp.End()
	copy(w.record, payment)
	sum := sha256.Sum256(w.record)
	for range validateRounds {
		copy(w.record, sum[:])
		sum = sha256.Sum256(w.record)
	}
	if memoryPressure {
		// A scratch arena per payment, fresh pages every time: page faults.
		share := w.cfg.incidentDuration / time.Duration(w.cfg.payments)
		faults, err := touchFreshPages(share)
		if err != nil {
			return err
		}
		sp.SetAttributes(attribute.Int("kprobe.demo.pages_touched", faults))
	}
	return nil
}

func (w *worker) ledgerWrite(ctx context.Context, id int, payments []string, slow bool, tid attribute.KeyValue) error {
	_, sp := w.tracer.Start(ctx, "ledger.write", trace.WithAttributes(tid))
	defer sp.End()
	var b strings.Builder
	for j, pay := range payments {
		fmt.Fprintf(&b, "%d,%s,%d.%02d,%s\n", id, pay, 100+j*37, j*13%100, time.Now().UTC().Format(time.RFC3339Nano))
	}
	n, err := w.st.append(b.String())
	if err != nil {
		return err
	}
	sp.SetAttributes(attribute.Int("ledger.bytes", n))
	if slow {
		// Write-through journalling gone wrong: large synchronous writes until the
		// incident has lasted its time. No sleeping: every bit of it is I/O.
		blocks, err := w.st.writeJournal(w.cfg.incidentDuration)
		if err != nil {
			return err
		}
		sp.SetAttributes(attribute.Int("kprobe.demo.journal_blocks", blocks))
	}
	return nil
}

func (w *worker) confirm(ctx context.Context, id, payments int, tid attribute.KeyValue) error {
	_, sp := w.tracer.Start(ctx, "clearing.confirm", trace.WithAttributes(tid,
		attribute.String("server.address", w.conn.RemoteAddr().String())))
	defer sp.End()
	if dl, ok := ctx.Deadline(); ok {
		w.conn.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(w.conn, "CONFIRM %d %d\n", id, payments); err != nil {
		return fmt.Errorf("sending to the clearing peer: %w", err)
	}
	line, err := w.reply.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the clearing peer's reply: %w", err)
	}
	if want := "OK " + strconv.Itoa(id) + "\n"; line != want {
		return fmt.Errorf("clearing peer answered %q", strings.TrimSpace(line))
	}
	return nil
}
