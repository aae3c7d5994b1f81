package otlp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kprobe/kprobe/pipeline/span"
)

const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// bytesCodec sends raw bytes as a gRPC message, whatever they are.
type bytesCodec struct{}

func (bytesCodec) Name() string { return "proto" }
func (bytesCodec) Marshal(v any) ([]byte, error) {
	return *(v.(*[]byte)), nil
}
func (bytesCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}

func grpcRaw(t *testing.T, addr string, body []byte) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out []byte
	return conn.Invoke(context.Background(), exportMethod, &body, &out, grpc.ForceCodec(bytesCodec{}))
}

// TestReceiverGRPCBadInput: what a client sends wrong is InvalidArgument, never Internal.
func TestReceiverGRPCBadInput(t *testing.T) {
	r, _ := startReceiver(t, nil)
	grpcAddr, _ := r.Addrs()
	tests := []struct {
		name string
		body []byte
		want codes.Code
	}{
		{"garbage", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}, codes.InvalidArgument},
		{"truncated", kafkaValue(t)[:40], codes.InvalidArgument},
		{"json instead of protobuf", []byte(`{"resourceSpans":[]}`), codes.InvalidArgument},
		{"valid", kafkaValue(t), codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := grpcRaw(t, grpcAddr, tt.body)
			if got := status.Code(err); got != tt.want {
				t.Errorf("code = %v (%v), want %v", got, err, tt.want)
			}
		})
	}
	if st := r.Stats(); st.BadRequests != 3 {
		t.Errorf("BadRequests = %d, want 3", st.BadRequests)
	}
}

// TestReceiverAdmission: requests beyond the in-flight limit wait, then are refused as
// busy (retryable); the bytes held never exceed the limit; room frees up after.
func TestReceiverAdmission(t *testing.T) {
	const reqBytes = 1 << 20
	body := padded(t, reqBytes-64<<10)
	tests := []struct {
		name string
		send func(r *Receiver) error // nil error: accepted
		busy func(err error) bool
	}{
		{"http", func(r *Receiver) error {
			_, addr := r.Addrs()
			resp, err := http.Post("http://"+addr+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d retry-after %q", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			return nil
		}, func(err error) bool {
			return err != nil && strings.Contains(err.Error(), "status 503 retry-after \"1\"")
		}},
		{"grpc", func(r *Receiver) error {
			addr, _ := r.Addrs()
			return grpcRaw(t, addr, body)
		}, func(err error) bool { return status.Code(err) == codes.Unavailable }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			entered := make(chan struct{}, 16)
			r, err := NewReceiver(ReceiverOptions{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
				MaxRequestBytes: reqBytes, MaxInFlightBytes: 2 * reqBytes, AdmissionWait: 50 * time.Millisecond},
				func(ctx context.Context, spans []span.Span) error {
					entered <- struct{}{}
					<-release
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			defer func() { cancel(); <-done }()

			// Two requests fill the budget and are held in the sink.
			held := make(chan error, 2)
			for range 2 {
				go func() { held <- tt.send(r) }()
			}
			<-entered
			<-entered
			// Every further request is refused while they are held.
			var wg sync.WaitGroup
			errs := make([]error, 6)
			for i := range errs {
				wg.Go(func() { errs[i] = tt.send(r) })
			}
			wg.Wait()
			for i, err := range errs {
				if !tt.busy(err) {
					t.Errorf("request %d while full: %v, want a busy refusal", i, err)
				}
			}
			st := r.Stats()
			if st.InFlightPeak > 2*reqBytes || st.RefusedBusy != 6 {
				t.Errorf("stats = %+v, want a peak within %d and 6 refused", st, 2*reqBytes)
			}
			close(release)
			for range 2 {
				if err := <-held; err != nil {
					t.Errorf("held request: %v", err)
				}
			}
			if err := tt.send(r); err != nil {
				t.Errorf("request after the others finished: %v", err)
			}
			if st := r.Stats(); st.InFlightBytes != 0 {
				t.Errorf("%d bytes still held after every request ended", st.InFlightBytes)
			}
		})
	}
}

// padded returns a valid export request of about n bytes.
func padded(t *testing.T, n int) []byte {
	t.Helper()
	td := testTraces(nil)
	td.ResourceSpans().At(0).Resource().Attributes().PutStr("padding", strings.Repeat("x", n))
	var m = kafkaValueOf(t, td)
	return m
}

// TestReceiverBodyTimeout: a body that trickles in is cut off after BodyTimeout (as a
// timeout, counted), over HTTP/1.1 and over gRPC's HTTP/2.
func TestReceiverBodyTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	r, err := NewReceiver(ReceiverOptions{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", BodyTimeout: timeout},
		func(context.Context, []span.Span) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	grpcAddr, httpAddr := r.Addrs()

	// trickle writes one byte every 50 ms until stop closes, as a slow sender would.
	trickle := func(w io.Writer, stop <-chan struct{}) {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := w.Write([]byte{0}); err != nil {
					return
				}
			}
		}
	}
	tests := []struct {
		name string
		run  func(t *testing.T, stop chan struct{}) string // returns the answer
		want string
	}{
		{"http", func(t *testing.T, stop chan struct{}) string {
			c, err := net.Dial("tcp", httpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100000\r\n\r\n")
			go trickle(c, stop)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return err.Error()
			}
			resp.Body.Close()
			return resp.Status
		}, "408 Request Timeout"},
		{"grpc", func(t *testing.T, stop chan struct{}) string {
			tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			}}
			pr, pw := io.Pipe()
			defer pw.Close()
			req, err := http.NewRequest(http.MethodPost, "http://"+grpcAddr+exportMethod, pr)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("TE", "trailers")
			go func() {
				pw.Write([]byte{0, 0, 1, 0, 0}) // an uncompressed message of 65536 bytes follows
				trickle(pw, stop)
			}()
			resp, err := tr.RoundTrip(req)
			if err != nil {
				return err.Error()
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, resp.Body)
			return "grpc-status " + resp.Trailer.Get("Grpc-Status") + resp.Header.Get("Grpc-Status")
		}, fmt.Sprintf("grpc-status %d", codes.DeadlineExceeded)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stop := make(chan struct{})
			defer close(stop)
			answered := make(chan string, 1)
			go func() { answered <- tt.run(t, stop) }()
			select {
			case got := <-answered:
				if got != tt.want {
					t.Errorf("answer %q, want %q", got, tt.want)
				}
			case <-time.After(60 * time.Second): // the sender would trickle for 5000 s
				t.Fatal("a trickling body held the request for a minute")
			}
		})
	}
	// The gRPC reservation is given back once the abandoned stream is torn down.
	deadline := time.Now().Add(30 * time.Second)
	for r.Stats().InFlightBytes != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := r.Stats(); st.BodyTimeouts != 2 || st.InFlightBytes != 0 {
		t.Errorf("stats = %+v, want 2 body timeouts and nothing held", st)
	}
}
