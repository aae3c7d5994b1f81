package otlp

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/kprobe/kprobe/pipeline/span"
)

// startReceiver runs a receiver on loopback port 0 whose sink feeds the returned channel.
func startReceiver(t *testing.T, sink Sink) (*Receiver, <-chan []span.Span) {
	t.Helper()
	got := make(chan []span.Span, 16)
	if sink == nil {
		return startReceiverWith(t, ReceiverOptions{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}, got), got
	}
	r, err := NewReceiver(ReceiverOptions{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}, sink)
	if err != nil {
		t.Fatal(err)
	}
	runReceiver(t, r)
	return r, got
}

// exportSettlement sends a settlement with a ledger write through a real SDK exporter and
// returns the spans the receiver should have produced.
func exportSettlement(t *testing.T, exp sdktrace.SpanExporter) []span.Span {
	t.Helper()
	ctx := context.Background()
	res := resource.NewSchemaless(
		attribute.String("service.name", "settlement-svc"),
		attribute.String("host.name", "node-a"),
		attribute.Int("process.pid", 2847),
	)
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSyncer(exp))
	tr := tp.Tracer("kprobe-test")
	t0 := time.Unix(1_700_000_000, 0)

	pctx, parent := tr.Start(ctx, "settlement.process", trace.WithTimestamp(t0),
		trace.WithAttributes(attribute.String("settlement.id", "4821"), attribute.Int("thread.id", 2850),
			attribute.String("http.route", "/settle")))
	_, child := tr.Start(pctx, "ledger.write", trace.WithTimestamp(t0.Add(time.Millisecond)),
		trace.WithAttributes(attribute.String("payment.id", "PAY-98721"), attribute.Int("thread.id", 2850)))
	child.End(trace.WithTimestamp(t0.Add(3 * time.Millisecond)))
	parent.End(trace.WithTimestamp(t0.Add(10 * time.Millisecond)))
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("shutting down the tracer provider: %v", err)
	}

	pc, cc := parent.SpanContext(), child.SpanContext()
	start := t0.UnixNano()
	return []span.Span{
		{
			TraceID: pc.TraceID().String(), SpanID: pc.SpanID().String(), Name: "settlement.process",
			Service: "settlement-svc", Host: "node-a", PID: 2847, TID: 2850,
			StartNs: start, EndNs: start + 10e6, Attrs: map[string]string{"settlement.id": "4821"},
		},
		{
			TraceID: cc.TraceID().String(), SpanID: cc.SpanID().String(), ParentID: pc.SpanID().String(),
			Name: "ledger.write", Service: "settlement-svc", Host: "node-a", PID: 2847, TID: 2850,
			StartNs: start + 1e6, EndNs: start + 3e6, Attrs: map[string]string{"payment.id": "PAY-98721"},
		},
	}
}

// collect reads spans until it has n, sorted by start.
func collect(t *testing.T, got <-chan []span.Span, n int) []span.Span {
	t.Helper()
	var all []span.Span
	timeout := time.After(10 * time.Second)
	for len(all) < n {
		select {
		case s := <-got:
			all = append(all, s...)
		case <-timeout:
			t.Fatalf("received %d spans, want %d", len(all), n)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].StartNs < all[j].StartNs })
	return all
}

func TestReceiverFromSDK(t *testing.T) {
	r, got := startReceiver(t, nil)
	grpcAddr, httpAddr := r.Addrs()
	ctx := context.Background()

	tests := []struct {
		name string
		exp  func() (sdktrace.SpanExporter, error)
	}{
		{"grpc", func() (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure())
		}},
		{"http protobuf", func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure())
		}},
		{"http gzip", func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure(),
				otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp, err := tt.exp()
			if err != nil {
				t.Fatal(err)
			}
			want := exportSettlement(t, exp)
			if diff := cmp.Diff(want, collect(t, got, len(want))); diff != "" {
				t.Errorf("received spans (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReceiverHTTP(t *testing.T) {
	r, got := startReceiver(t, nil)
	_, httpAddr := r.Addrs()
	url := "http://" + httpAddr + "/v1/traces"

	t.Run("json", func(t *testing.T) {
		body := `{"resourceSpans":[{"resource":{"attributes":[
			{"key":"service.name","value":{"stringValue":"settlement-svc"}},
			{"key":"host.name","value":{"stringValue":"node-a"}},
			{"key":"process.pid","value":{"intValue":"2847"}}]},
		  "scopeSpans":[{"spans":[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7",
			"name":"settlement.process","startTimeUnixNano":"1000","endTimeUnixNano":"9000",
			"attributes":[{"key":"settlement.id","value":{"stringValue":"4821"}},{"key":"thread.id","value":{"intValue":"2850"}}]}]}]}]}`
		resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		want := []span.Span{{
			TraceID: traceAS, SpanID: spanPS, Name: "settlement.process", Service: "settlement-svc",
			Host: "node-a", PID: 2847, TID: 2850, StartNs: 1000, EndNs: 9000,
			Attrs: map[string]string{"settlement.id": "4821"},
		}}
		if diff := cmp.Diff(want, collect(t, got, 1)); diff != "" {
			t.Errorf("received spans (-want +got):\n%s", diff)
		}
	})

	errTests := []struct {
		name, method, contentType, body string
		want                            int
	}{
		{"get", http.MethodGet, "", "", http.StatusMethodNotAllowed},
		{"unknown content type", http.MethodPost, "text/plain", "hi", http.StatusUnsupportedMediaType},
		{"bad protobuf", http.MethodPost, "application/x-protobuf", "\x0a\xff\xff", http.StatusBadRequest},
		{"bad json", http.MethodPost, "application/json", "{", http.StatusBadRequest},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, url, bytes.NewBufferString(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tt.contentType)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestReceiverSinkErrorIsRetryable(t *testing.T) {
	r, _ := startReceiver(t, func(ctx context.Context, spans []span.Span) error {
		return errors.New("engine behind")
	})
	_, httpAddr := r.Addrs()
	var m = kafkaValue(t) // TracesData and ExportTraceServiceRequest share a wire form
	resp, err := http.Post("http://"+httpAddr+"/v1/traces", "application/x-protobuf", bytes.NewReader(m))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", resp.StatusCode)
	}
}

func TestNewReceiverNeedsAnAddress(t *testing.T) {
	_, err := NewReceiver(ReceiverOptions{}, func(context.Context, []span.Span) error { return nil })
	if err == nil {
		t.Fatal("NewReceiver with no address succeeded")
	}
}

// startReceiverWith runs a receiver with opts whose sink feeds got.
func startReceiverWith(t *testing.T, opts ReceiverOptions, got chan []span.Span) *Receiver {
	t.Helper()
	r, err := NewReceiver(opts, func(ctx context.Context, spans []span.Span) error {
		got <- spans
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	runReceiver(t, r)
	return r
}

// runReceiver runs r until the test ends.
func runReceiver(t *testing.T, r *Receiver) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func semconvService(name string) attribute.KeyValue { return attribute.String("service.name", name) }
