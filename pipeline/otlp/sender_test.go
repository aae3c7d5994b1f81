package otlp

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kprobe/kprobe/pipeline/span"
)

// exportBare sends one span from a resource with only service.name, as the Python SDK's
// defaults do, and returns how the receiver saw it.
func exportBare(t *testing.T, exp sdktrace.SpanExporter, got <-chan []span.Span) span.Span {
	t.Helper()
	ctx := context.Background()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconvService("settlement-py"))))
	_, sp := tp.Tracer("t").Start(ctx, "settlement.process")
	sp.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return collect(t, got, 1)[0]
}

// TestReceiverAttributesSender: spans without host.name or process.pid sent from this
// node are given the node's name and the sending process (this test's own), found from
// the connection: over TCP (the socket's owner in /proc) and over a unix socket
// (SO_PEERCRED), by gRPC and HTTP.
func TestReceiverAttributesSender(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Log("not root: finding the sender reads only this user's processes")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "otlp.sock")
	got := make(chan []span.Span, 16)
	r := startReceiverWith(t, ReceiverOptions{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Node: "node-a"}, got)
	ur := startReceiverWith(t, ReceiverOptions{GRPCAddr: "unix:" + sock, Node: "node-a"}, got)
	_ = ur
	grpcAddr, httpAddr := r.Addrs()
	ctx := context.Background()
	unixDial := func(ctx context.Context, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
	tests := []struct {
		name string
		exp  func() (sdktrace.SpanExporter, error)
	}{
		{"grpc over tcp", func() (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure())
		}},
		{"http over tcp", func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure())
		}},
		{"grpc over a unix socket", func() (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint("passthrough:///otlp"),
				otlptracegrpc.WithDialOption(grpc.WithContextDialer(unixDial), grpc.WithTransportCredentials(insecure.NewCredentials())))
		}},
	}
	want := span.Span{Service: "settlement-py", Name: "settlement.process", Host: "node-a", HostFrom: span.FromReceiver,
		PID: uint32(os.Getpid()), PIDFrom: span.FromPeer}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp, err := tt.exp()
			if err != nil {
				t.Fatal(err)
			}
			s := exportBare(t, exp, got)
			s.TraceID, s.SpanID, s.StartNs, s.EndNs = "", "", 0, 0
			if diff := cmp.Diff(want, s); diff != "" {
				t.Errorf("attributed span (-want +got):\n%s", diff)
			}
		})
	}
	if st := r.Stats(); st.PIDFromPeer != 2 || st.HostFromNode != 2 {
		t.Errorf("tcp receiver stats = %+v, want 2 spans given the peer's pid and the node", st)
	}
}

// TestReceiverKeepsWhatSpansSay: a span's own host.name and process.pid win; a remote
// sender's spans are given nothing.
func TestReceiverKeepsWhatSpansSay(t *testing.T) {
	r := &Receiver{opts: ReceiverOptions{Node: "node-a", ProcRoot: "/proc"}}
	spans := []span.Span{{Host: "other", PID: 42}, {}}
	r.attribute(spans, &sender{addr: netip.MustParseAddrPort("10.1.2.3:5555")})
	if diff := cmp.Diff([]span.Span{{Host: "other", PID: 42}, {}}, spans); diff != "" {
		t.Errorf("remote sender (-want +got):\n%s", diff)
	}
	// A containerised sender names itself by its namespace pid (7): the host pid is joined.
	local := &sender{local: true, lookup: func() (uint32, error) { return 4242, nil }}
	local.once.Do(func() { local.pid, local.nspid = 4242, 7 })
	spans = []span.Span{{PID: 7}, {Host: "node-b", PID: 9}}
	r.attribute(spans, local)
	want := []span.Span{{Host: "node-a", HostFrom: span.FromReceiver, PID: 4242}, {Host: "node-b", PID: 9}}
	if diff := cmp.Diff(want, spans); diff != "" {
		t.Errorf("local sender (-want +got):\n%s", diff)
	}
}

// TestReceiverAllowList: only the listed services' spans and the listed peers' requests
// are accepted; the others are told (partial success, 403) and counted.
func TestReceiverAllowList(t *testing.T) {
	got := make(chan []span.Span, 16)
	r := startReceiverWith(t, ReceiverOptions{HTTPAddr: "127.0.0.1:0", AllowServices: []string{"settlement-svc"}}, got)
	_, httpAddr := r.Addrs()
	ctx := context.Background()
	for _, svc := range []string{"other-svc", "settlement-svc"} {
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(httpAddr), otlptracehttp.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(resource.NewSchemaless(semconvService(svc))))
		_, sp := tp.Tracer("t").Start(ctx, "s")
		sp.End()
		tp.Shutdown(ctx)
	}
	if s := collect(t, got, 1); s[0].Service != "settlement-svc" {
		t.Errorf("accepted %+v, want only settlement-svc", s)
	}
	if st := r.Stats(); st.RefusedSpans != 1 || st.Spans != 1 {
		t.Errorf("stats = %+v, want 1 span refused and 1 accepted", st)
	}

	tests := []struct {
		name  string
		allow []netip.Prefix
		want  int
	}{
		{"loopback allowed", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, http.StatusOK},
		{"only another network", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startReceiverWith(t, ReceiverOptions{HTTPAddr: "127.0.0.1:0", AllowPeers: tt.allow}, make(chan []span.Span, 4))
			_, addr := r.Addrs()
			resp, err := http.Post("http://"+addr+"/v1/traces", "application/x-protobuf", strings.NewReader(""))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestParseProcAddr(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"0100007F:1F90", "127.0.0.1:8080"},
		{"00000000000000000000000001000000:10DD", "[::1]:4317"},
		{"0000000000000000FFFF00000100007F:C350", "[::ffff:127.0.0.1]:50000"},
	}
	for _, tt := range tests {
		got, err := parseProcAddr(tt.in)
		if err != nil || got.String() != tt.want {
			t.Errorf("parseProcAddr(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "0100007F", "0100007G:1F90", "01007F:1F90", "0100007F:1FFFFF"} {
		if _, err := parseProcAddr(bad); err == nil {
			t.Errorf("parseProcAddr(%q) succeeded", bad)
		}
	}
}

func FuzzFindInode(f *testing.F) {
	f.Add("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0100007F:10DD 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 12345 1 0 20 4 30 10 -1\n")
	f.Add("\n\n x y z\n")
	local := netip.MustParseAddrPort("127.0.0.1:4317")
	remote := netip.MustParseAddrPort("127.0.0.1:50000")
	f.Fuzz(func(t *testing.T, table string) {
		ino, err := findInode(strings.NewReader(table), local, remote)
		if err == nil && ino == 0 {
			t.Fatal("inode 0 returned without an error")
		}
	})
}
