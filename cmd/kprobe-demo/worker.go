package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
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

// worker processes settlements on its locked OS thread: clearing windows of settlements,
// each validating its payments, matching its order, posting to the ledger and
// confirming with the bank through the gateway.
type worker struct {
	cfg    config
	tracer trace.Tracer
	st     *storage
	env    env
	conn   net.Conn
	reply  *bufio.Reader
	stdout io.Writer
	tid    int
	record []byte
	book   []int64
	// hogDone is closed when the hog has finished burning the worker's CPU.
	hogDone chan struct{}
}

func newWorker(ctx context.Context, cfg config, tracer trace.Tracer, st *storage, e env, stdout io.Writer) (*worker, error) {
	w := &worker{cfg: cfg, tracer: tracer, st: st, env: e, stdout: stdout, tid: unix.Gettid(),
		record: make([]byte, 64<<10), book: make([]int64, 4096)}
	if e.cpu >= 0 {
		if err := pinTo(e.cpu); err != nil {
			return nil, err
		}
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.gateway)
	if err != nil {
		return nil, fmt.Errorf("connecting to the clearing gateway: %w", err)
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
	var window trace.Span
	defer func() {
		if window != nil {
			window.End()
		}
	}()
	wctx := ctx
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
		if i%w.cfg.windowSettlements == 0 {
			// A clearing window: the settlements submitted in it are its children.
			if window != nil {
				window.End()
			}
			wctx, window = w.tracer.Start(ctx, "clearing.window", trace.WithAttributes(
				attribute.String("clearing.window", "CW-"+strconv.Itoa(id)), semconv.ThreadID(w.tid)))
		}
		payments := make([]string, w.cfg.payments)
		for j := range payments {
			payments[j] = "PAY-" + strconv.Itoa(w.cfg.firstPayment+i*w.cfg.payments+j)
		}
		incident := ""
		if w.cfg.incident != incidentNone && id == w.cfg.incidentSettlement {
			incident = w.cfg.incident
			// Set the incident up before the settlement starts, so that the talking to
			// the helper is not part of it.
			if err := w.prepare(ctx, incident); err != nil {
				return err
			}
		}
		start := time.Now()
		traceID, err := w.settle(wctx, id, payments, incident)
		if err != nil {
			return fmt.Errorf("settlement %d: %w", id, err)
		}
		if err := w.finish(ctx, incident); err != nil {
			return err
		}
		line := fmt.Sprintf("settlement=%d payments=%d duration_ms=%.1f", id, len(payments),
			float64(time.Since(start).Microseconds())/1000)
		if traceID != "" {
			line += " trace_id=" + traceID
		}
		if incident != "" {
			line += " incident=" + incident + " target=" + w.target(incident)
		}
		if _, err := fmt.Fprintln(w.stdout, line); err != nil {
			return fmt.Errorf("writing summary: %w", err)
		}
	}
	return nil
}

// target names what the incident injected, as kprobe should find it: the process that
// held what the settlement waited for, or the file it waited on.
func (w *worker) target(incident string) string {
	switch incident {
	case incidentCPUHog:
		return fmt.Sprintf("pid:%d", w.env.hog.cmd.Process.Pid)
	case incidentSlowPeer:
		return fmt.Sprintf("pid:%d", w.env.bankPID)
	case incidentLock:
		return fmt.Sprintf("pid:%d", w.env.locker.cmd.Process.Pid)
	case incidentMemoryPressure:
		return fmt.Sprintf("pid:%d", os.Getpid())
	case incidentSlowStorage:
		dev, ino := w.st.journalID()
		return fmt.Sprintf("file:%d:%d", dev, ino)
	}
	return ""
}

// prepare sets the incident off: the hog starts burning the worker's CPU, the reconciler
// takes the ledger lock.
func (w *worker) prepare(ctx context.Context, incident string) error {
	switch incident {
	case incidentCPUHog:
		if err := w.env.hog.send("spin %s", w.cfg.incidentDuration); err != nil {
			return err
		}
		w.hogDone = make(chan struct{})
		go func(done chan struct{}) {
			w.env.hog.next(ctx, time.Minute) // "done"
			close(done)
		}(w.hogDone)
	case incidentLock:
		if err := w.env.locker.send("hold %s", w.cfg.incidentDuration); err != nil {
			return err
		}
		if l, err := w.env.locker.next(ctx, 10*time.Second); err != nil || l != "held" {
			return fmt.Errorf("the reconciler did not take the ledger lock: %q %v", l, err)
		}
	}
	return nil
}

// finish waits for the incident's helper to be done with it.
func (w *worker) finish(ctx context.Context, incident string) error {
	switch incident {
	case incidentCPUHog:
		<-w.hogDone
	case incidentLock:
		if l, err := w.env.locker.next(ctx, 10*time.Second); err != nil || l != "released" {
			return fmt.Errorf("the reconciler did not release the ledger lock: %q %v", l, err)
		}
	}
	return nil
}

// settle is one settlement.process span: validate each payment, match the order, write
// the ledger, confirm with the bank.
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
	for _, pay := range payments {
		if err := w.validate(ctx, pay, incident, tidAttr); err != nil {
			return "", err
		}
	}
	w.match(ctx, id, tidAttr)
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

func (w *worker) validate(ctx context.Context, payment, incident string, tid attribute.KeyValue) error {
	_, sp := w.tracer.Start(ctx, "payment.validate", trace.WithAttributes(attribute.String("payment.id", payment), tid))
	defer sp.End()
	copy(w.record, payment)
	w.hash(validateRounds)
	switch incident {
	case incidentMemoryPressure:
		// A scratch arena per payment, fresh pages every time: page faults.
		share := w.cfg.incidentDuration / time.Duration(w.cfg.payments)
		faults, err := touchFreshPages(share)
		if err != nil {
			return err
		}
		sp.SetAttributes(attribute.Int("kprobe.demo.pages_touched", faults))
	case incidentCPUHog:
		// Validation that needs the CPU while the hog has it: runnable, not running.
		for {
			select {
			case <-w.hogDone:
				return nil
			default:
				w.hash(1)
			}
		}
	}
	return nil
}

func (w *worker) hash(rounds int) {
	sum := sha256.Sum256(w.record)
	for range rounds {
		copy(w.record, sum[:])
		sum = sha256.Sum256(w.record)
	}
}

// match is one order-book operation: the settlement's order matched against the book.
func (w *worker) match(ctx context.Context, id int, tid attribute.KeyValue) {
	_, sp := w.tracer.Start(ctx, "orderbook.match", trace.WithAttributes(attribute.String("order.id", "ORD-"+strconv.Itoa(id)), tid))
	defer sp.End()
	for i := range w.book {
		w.book[i] = int64((i*7919 + id*104729) % 100003)
	}
	slices.Sort(w.book)
	_, found := slices.BinarySearch(w.book, int64(id%100003))
	sp.SetAttributes(attribute.Bool("order.matched", found))
}

func (w *worker) ledgerWrite(ctx context.Context, id int, payments []string, slow bool, tid attribute.KeyValue) error {
	_, sp := w.tracer.Start(ctx, "ledger.write", trace.WithAttributes(tid))
	defer sp.End()
	var b strings.Builder
	for j, pay := range payments {
		fmt.Fprintf(&b, "%d,%s,%d.%02d,%s\n", id, pay, 100+j*37, j*13%100, time.Now().UTC().Format(time.RFC3339Nano))
	}
	// The ledger lock is shared with the reconciler: posting waits while it holds it.
	return w.st.withLock(func() error {
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
	})
}

func (w *worker) confirm(ctx context.Context, id, payments int, tid attribute.KeyValue) error {
	_, sp := w.tracer.Start(ctx, "clearing.confirm", trace.WithAttributes(tid,
		attribute.String("server.address", w.conn.RemoteAddr().String())))
	defer sp.End()
	if dl, ok := ctx.Deadline(); ok {
		w.conn.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(w.conn, "CONFIRM %d %d\n", id, payments); err != nil {
		return fmt.Errorf("sending to the clearing gateway: %w", err)
	}
	line, err := w.reply.ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the clearing gateway's reply: %w", err)
	}
	if want := "OK " + strconv.Itoa(id) + "\n"; line != want {
		return fmt.Errorf("the bank answered %q", strings.TrimSpace(line))
	}
	return nil
}
