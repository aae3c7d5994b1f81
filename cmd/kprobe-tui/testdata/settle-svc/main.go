// Command settle-svc is the subject of the workstation's end-to-end test: a settlement
// service in one process that the replay engine can re-run faithfully. kprobe-demo
// cannot be (it starts helper processes and reaches them on ports chosen at run time, so
// a replay diverges at its first connect).
//
// It reads a batch of payments, and for each settlement (one OpenTelemetry
// settlement.process span, settlement.id set, on one locked thread) appends the
// payments to a ledger and fsyncs it; the settlement named by --slow also journals
// 256 KiB blocks with an fsync each, the incident the test investigates. It prints one
// line per settlement and exits 0; a failed ledger write or fsync prints the error and
// exits 3 (the error path a replay with an injected errno takes).
//
// Spans go to --otlp (OTLP/gRPC) when given; a replay runs it without, so that a replay
// never sends spans to production's collector.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sys/unix"
)

// The main goroutine keeps the main thread, so every span's thread is the one the kernel
// events of its work carry (the correlator joins them by thread).
func init() { runtime.LockOSThread() }

func main() {
	otlp := flag.String("otlp", "", "OTLP/gRPC endpoint for the spans (empty: no spans)")
	payments := flag.String("payments", "", "the batch: one payment a line, \"SETTLEMENT PAYMENT AMOUNT\"")
	ledger := flag.String("ledger", "", "the ledger file payments are appended to")
	slow := flag.String("slow", "", "the settlement whose ledger write also journals (the incident)")
	blocks := flag.Int("journal-blocks", 8, "256 KiB journal blocks the slow settlement writes")
	flag.Parse()
	if *payments == "" || *ledger == "" {
		fmt.Fprintln(os.Stderr, "settle-svc: give --payments FILE and --ledger FILE")
		os.Exit(2)
	}
	if err := run(*otlp, *payments, *ledger, *slow, *blocks); err != nil {
		fmt.Fprintln(os.Stderr, "settle-svc:", err)
		os.Exit(3)
	}
}

func run(endpoint, paymentsFile, ledgerFile, slow string, blocks int) (err error) {
	ctx := context.Background()
	tracer, shutdown, err := newTracer(ctx, endpoint)
	if err != nil {
		return err
	}
	defer func() {
		if serr := shutdown(ctx); serr != nil && err == nil {
			err = fmt.Errorf("flushing spans: %w", serr)
		}
	}()
	batch, err := readBatch(paymentsFile)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(ledgerFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, s := range batch {
		if err := settle(ctx, tracer, f, s, s.id == slow, blocks); err != nil {
			return fmt.Errorf("settlement %s: %w", s.id, err)
		}
	}
	return nil
}

type settlement struct {
	id    string
	lines []string // "PAYMENT AMOUNT"
	cents int64
}

// readBatch groups the payments by settlement, in the order they come.
func readBatch(path string) ([]settlement, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []settlement
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("%s:%d: want SETTLEMENT PAYMENT AMOUNT", path, n)
		}
		amount, err := strconv.ParseFloat(f[2], 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: amount %q: %w", path, n, f[2], err)
		}
		if len(out) == 0 || out[len(out)-1].id != f[0] {
			out = append(out, settlement{id: f[0]})
		}
		s := &out[len(out)-1]
		s.lines = append(s.lines, f[1]+" "+f[2])
		s.cents += int64(amount*100 + 0.5)
	}
	return out, nil
}

// settle is one settlement.process span: post its payments to the ledger, durably.
func settle(ctx context.Context, tracer trace.Tracer, ledger *os.File, s settlement, slow bool, blocks int) (err error) {
	tid := semconv.ThreadID(unix.Gettid())
	ctx, sp := tracer.Start(ctx, "settlement.process", trace.WithAttributes(
		attribute.String("settlement.id", s.id), attribute.Int("payment.count", len(s.lines)), tid))
	defer func() {
		if err != nil {
			sp.RecordError(err)
			sp.SetStatus(codes.Error, err.Error())
		}
		sp.End()
	}()
	_, w := tracer.Start(ctx, "ledger.write", trace.WithAttributes(tid))
	defer w.End()
	var b strings.Builder
	for _, l := range s.lines {
		fmt.Fprintf(&b, "%s %s\n", s.id, l)
	}
	if _, err := ledger.WriteString(b.String()); err != nil {
		return fmt.Errorf("ledger write: %w", err)
	}
	if slow {
		// Write-through journalling: every block made durable before the next.
		block := bytes.Repeat([]byte(s.id+" journal\n"), (256<<10)/(len(s.id)+9))
		for range blocks {
			if _, err := ledger.Write(block); err != nil {
				return fmt.Errorf("journal write: %w", err)
			}
			if err := ledger.Sync(); err != nil {
				return fmt.Errorf("journal fsync: %w", err)
			}
		}
	}
	if err := ledger.Sync(); err != nil {
		return fmt.Errorf("ledger fsync: %w", err)
	}
	fmt.Printf("settlement %s: %d payments, %d.%02d posted\n", s.id, len(s.lines), s.cents/100, s.cents%100)
	return nil
}

func newTracer(ctx context.Context, endpoint string) (trace.Tracer, func(context.Context) error, error) {
	if endpoint == "" {
		return noop.NewTracerProvider().Tracer("settle-svc"), func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(endpoint), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithTimeout(5*time.Second))
	if err != nil {
		return nil, nil, fmt.Errorf("otlp exporter: %w", err)
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, nil, fmt.Errorf("hostname: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewWithAttributes(semconv.SchemaURL,
			semconv.ServiceName("settle-svc"), semconv.HostName(host), semconv.ProcessPID(os.Getpid()))),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(200*time.Millisecond)),
	)
	return tp.Tracer("github.com/kprobe/kprobe/cmd/kprobe-tui/testdata/settle-svc"), tp.Shutdown, nil
}
