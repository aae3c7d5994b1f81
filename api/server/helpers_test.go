package server_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/api/server"
)

// serve starts a server for opts on lc (127.0.0.1:0 when lc.Addr is empty) and stops it
// when the test ends.
func serve(t testing.TB, opts server.Options, lc server.ListenConfig) *server.Listener {
	t.Helper()
	if lc.Addr == "" {
		lc.Addr = "127.0.0.1:0"
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := server.Listen(lc)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Auth == nil {
		opts.Auth = ln.Auth()
	}
	if opts.Auth != nil {
		// The listener's auth wins: rebuild the server with it.
		if srv, err = server.New(opts); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ln.Serve(ctx, nil, srv.Handler()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln
}

func dial(t testing.TB, opts client.Options) *client.Client {
	t.Helper()
	c, err := client.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func wantCode(t *testing.T, what string, err error, code connect.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %v", what, code)
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		t.Fatalf("%s: %v is no API error, want %v", what, err, code)
	}
	if ce.Code() != code {
		t.Fatalf("%s: code %v (%v), want %v", what, ce.Code(), err, code)
	}
}

// h2c is a transport that speaks HTTP/2 without TLS, as gRPC over plaintext needs.
func h2c() *http.Transport {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{Protocols: &p}
}
