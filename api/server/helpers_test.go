package server_test

import (
	"errors"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/api/server"
	"github.com/kprobe/kprobe/api/server/servertest"
)

// serve starts a server for opts on lc until the test ends.
func serve(t testing.TB, opts server.Options, lc server.ListenConfig) *servertest.Running {
	t.Helper()
	return servertest.Serve(t, opts, lc)
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
