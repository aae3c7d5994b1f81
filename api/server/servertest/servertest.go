// Package servertest runs a real API server for the tests of the API's callers.
package servertest

import (
	"context"
	"sync"
	"testing"

	"github.com/kprobe/kprobe/api/server"
)

// Running is a server serving in the background.
type Running struct {
	*server.Listener
	stop func()
}

// Stop ends the server (as a recorder that exits); it is also done when the test ends.
func (r *Running) Stop() { r.stop() }

// Serve serves opts on lc (127.0.0.1:0 when lc.Addr is empty), with the authentication
// lc asks for, until the test ends or Stop.
func Serve(t testing.TB, opts server.Options, lc server.ListenConfig) *Running {
	t.Helper()
	if lc.Addr == "" {
		lc.Addr = "127.0.0.1:0"
	}
	ln, err := server.Listen(lc)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Auth == nil {
		opts.Auth = ln.Auth()
	}
	srv, err := server.New(opts)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ln.Serve(ctx, nil, srv.Handler()) }()
	var once sync.Once
	r := &Running{Listener: ln, stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serving the API: %v", err)
			}
		})
	}}
	t.Cleanup(r.stop)
	return r
}
