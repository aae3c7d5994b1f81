package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/api/kprobe/v1/kprobev1connect"
	"github.com/kprobe/kprobe/api/server"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

const (
	tokenA = "0123456789abcdef-token-a"
	tokenB = "fedcba9876543210-token-b"
)

func tokenFile(t *testing.T) string {
	t.Helper()
	sum := sha256.Sum256([]byte(tokenB))
	path := filepath.Join(t.TempDir(), "tokens")
	body := "# API tokens\n" + tokenA + "\n\n  sha256:" + hex.EncodeToString(sum[:]) + "  \n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseTokens(t *testing.T) {
	sum := sha256.Sum256([]byte(tokenB))
	got, err := server.ParseTokens(strings.NewReader("# c\n" + tokenA + "\nsha256:" + hex.EncodeToString(sum[:]) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([][32]byte{sha256.Sum256([]byte(tokenA)), sum}, got); d != "" {
		t.Errorf("digests (-want +got):\n%s", d)
	}
	for name, body := range map[string]string{
		"short token":   "hunter2\n",
		"bad hex":       "sha256:zz\n",
		"short digest":  "sha256:abcd\n",
		"only comments": "# nothing\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := server.ParseTokens(strings.NewReader(body))
			if err == nil {
				t.Fatalf("ParseTokens(%q) accepted it", body)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error repeats the secret: %v", err)
			}
		})
	}
}

func TestBearerTokens(t *testing.T) {
	f := newFake(10)
	ln := serve(t, server.Options{Service: f}, server.ListenConfig{TokenFile: tokenFile(t)})
	ctx := context.Background()
	ref := investigate.Ref{Kind: "settlement", ID: "4821"}
	for _, tc := range []struct {
		name, token string
		code        connect.Code // 0: allowed
	}{
		{"plaintext token", tokenA, 0},
		{"hashed token", tokenB, 0},
		{"no token", "", connect.CodeUnauthenticated},
		{"wrong token", tokenA + "x", connect.CodeUnauthenticated},
		{"a digest is no token", "sha256:" + hex.EncodeToString(func() []byte { s := sha256.Sum256([]byte(tokenB)); return s[:] }()), connect.CodeUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.Calls()
			_, err := dial(t, client.Options{Addr: ln.Addr(), Token: tc.token}).Chain(ctx, ref)
			if tc.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, tc.name, err, tc.code)
			if f.Calls() != before {
				t.Errorf("a refused request reached the service")
			}
			if !strings.Contains(err.Error(), "KPROBE_API_TOKEN") {
				t.Errorf("the client's error does not say how to authenticate: %v", err)
			}
		})
	}
	// Load balancers probe health without credentials (grpc-go's own health client here);
	// Ping also proves the credentials, so without a token it fails.
	conn, err := grpc.NewClient(ln.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hres, err := healthv1.NewHealthClient(conn).Check(ctx, &healthv1.HealthCheckRequest{Service: kprobev1connect.InvestigationServiceName})
	if err != nil || hres.GetStatus() != healthv1.HealthCheckResponse_SERVING {
		t.Errorf("health without a token: %v %v", hres, err)
	}
	wantCode(t, "ping without a token", dial(t, client.Options{Addr: ln.Addr()}).Ping(ctx), connect.CodeUnauthenticated)
	if err := dial(t, client.Options{Addr: ln.Addr(), Token: tokenA}).Ping(ctx); err != nil {
		t.Errorf("ping with a token: %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	p := newPKI(t)
	f := newFake(10)
	ctx := context.Background()
	ref := investigate.Ref{Kind: "settlement", ID: "4821"}

	// Client certificates only: the TLS handshake itself refuses a client without one.
	ln := serve(t, server.Options{Service: f}, server.ListenConfig{TLSCert: p.ServerCert, TLSKey: p.ServerKey, ClientCA: p.CA})
	if !ln.TLS() {
		t.Fatal("listener without TLS")
	}
	if _, err := dial(t, client.Options{Addr: ln.Addr(), CAFile: p.CA, CertFile: p.ClientCert, KeyFile: p.ClientKey}).Chain(ctx, ref); err != nil {
		t.Fatalf("client certificate refused: %v", err)
	}
	for name, opts := range map[string]client.Options{
		"no certificate":            {Addr: ln.Addr(), CAFile: p.CA},
		"certificate of another CA": {Addr: ln.Addr(), CAFile: p.CA, CertFile: p.OtherCert, KeyFile: p.OtherKey},
	} {
		t.Run(name, func(t *testing.T) {
			before := f.Calls()
			if _, err := dial(t, opts).Chain(ctx, ref); err == nil {
				t.Fatal("accepted")
			}
			if f.Calls() != before {
				t.Errorf("a refused request reached the service")
			}
		})
	}
	// The client checks the server too.
	if _, err := dial(t, client.Options{Addr: ln.Addr(), TLS: true, CertFile: p.ClientCert, KeyFile: p.ClientKey}).Chain(ctx, ref); err == nil {
		t.Error("the client trusted a server certificate from an unknown CA")
	}

	// Tokens and certificates: either will do; neither is Unauthenticated.
	both := serve(t, server.Options{Service: f}, server.ListenConfig{TLSCert: p.ServerCert, TLSKey: p.ServerKey,
		ClientCA: p.CA, TokenFile: tokenFile(t)})
	if _, err := dial(t, client.Options{Addr: both.Addr(), CAFile: p.CA, Token: tokenA}).Chain(ctx, ref); err != nil {
		t.Errorf("token over TLS: %v", err)
	}
	if _, err := dial(t, client.Options{Addr: both.Addr(), CAFile: p.CA, CertFile: p.ClientCert, KeyFile: p.ClientKey}).Chain(ctx, ref); err != nil {
		t.Errorf("certificate without token: %v", err)
	}
	_, err := dial(t, client.Options{Addr: both.Addr(), CAFile: p.CA}).Chain(ctx, ref)
	wantCode(t, "neither token nor certificate", err, connect.CodeUnauthenticated)
}

func TestListenRefusesOpenAPIBeyondLoopback(t *testing.T) {
	ip := nonLoopbackIP(t)
	addr := net.JoinHostPort(ip, "0")
	for _, lc := range []server.ListenConfig{{Addr: addr}, {Addr: ":0"}} {
		_, err := server.Listen(lc)
		if err == nil || !strings.Contains(err.Error(), "--api-insecure") {
			t.Errorf("Listen(%q) without auth: %v, want a refusal naming --api-insecure", lc.Addr, err)
		}
	}
	ln, err := server.Listen(server.ListenConfig{Addr: addr, Insecure: true})
	if err != nil {
		t.Fatalf("--api-insecure: %v", err)
	}
	ln.Close()
	ln, err = server.Listen(server.ListenConfig{Addr: addr, TokenFile: tokenFile(t)})
	if err != nil {
		t.Fatalf("with tokens: %v", err)
	}
	ln.Close()
	for _, bad := range []server.ListenConfig{
		{Addr: "127.0.0.1:0", TLSCert: "x.pem"},
		{Addr: "127.0.0.1:0", ClientCA: "ca.pem"},
		{Addr: "no-port"},
	} {
		if _, err := server.Listen(bad); err == nil {
			t.Errorf("Listen(%+v) accepted it", bad)
		}
	}
}

// nonLoopbackIP is an address of this machine beyond loopback.
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address")
	return ""
}

func TestUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "kp-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, client.SocketName)
	ln := serve(t, server.Options{Service: newFake(10)}, server.ListenConfig{Addr: "unix:" + path})
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("socket %s: mode %v, want a socket with 0600", path, st.Mode())
	}
	if _, err := dial(t, client.Options{Addr: ln.Addr()}).Chain(context.Background(), investigate.Ref{Kind: "settlement", ID: "4821"}); err != nil {
		t.Fatal(err)
	}
	// A second server on a socket in use is refused; a stale socket file is replaced.
	if _, err := server.Listen(server.ListenConfig{Addr: "unix:" + path}); err == nil || !strings.Contains(err.Error(), "already serves") {
		t.Errorf("second listener on a live socket: %v", err)
	}
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	sl, err := server.Listen(server.ListenConfig{Addr: "unix:" + stale})
	if err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	sl.Close()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left the socket file: %v", err)
	}
}
