package datadir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/api/server"
	"github.com/kprobe/kprobe/api/server/servertest"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/pipeline/investigate/investigatetest"
)

// counted is a Service that counts how often it was opened and closed.
type counted struct {
	investigate.Service
	closes *atomic.Int32
}

func (c counted) Close() error { c.closes.Add(1); return nil }

func opener(opens, closes *atomic.Int32) func(context.Context) (investigate.Service, error) {
	svc := investigatetest.New(10)
	return func(context.Context) (investigate.Service, error) {
		opens.Add(1)
		return counted{Service: svc, closes: closes}, nil
	}
}

// shortDir is a data directory whose socket path fits a unix socket's limit.
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "dd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

var incident = investigate.Ref{Kind: investigate.KindSettlement, ID: investigatetest.Incident}

// TestDirectReadsHoldTheStoreForABurst: with no recorder, a burst of calls opens the stores
// once; they are closed Linger after the last call, and the next call opens them again.
// With a negative Linger every call opens and closes them.
func TestDirectReadsHoldTheStoreForABurst(t *testing.T) {
	var opens, closes atomic.Int32
	r, err := New(Options{Dir: shortDir(t), Open: opener(&opens, &closes), Linger: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		if _, err := r.Chain(ctx, incident); err != nil {
			t.Fatal(err)
		}
	}
	if o := opens.Load(); o != 1 {
		t.Errorf("%d opens for a burst of 3 calls, want 1", o)
	}
	waitClosed(t, &opens, &closes)
	if _, err := r.Chain(ctx, incident); err != nil {
		t.Fatal(err)
	}
	if o := opens.Load(); o != 2 {
		t.Errorf("%d opens after the stores were let go and read again, want 2", o)
	}
	// Close lets them go at once, whatever the linger.
	r.opts.Linger = time.Hour
	if _, err := r.Chain(ctx, incident); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if o, c := opens.Load(), closes.Load(); o != c {
		t.Errorf("after Close: %d opens, %d closes", o, c)
	}
	if _, err := r.Live(ctx, client.LiveFilter{}); err == nil || !strings.Contains(err.Error(), "nothing is recording") {
		t.Errorf("live without a recorder: %v", err)
	}

	opens.Store(0)
	closes.Store(0)
	once, err := New(Options{Dir: shortDir(t), Open: opener(&opens, &closes), Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := once.Chain(ctx, incident); err != nil {
			t.Fatal(err)
		}
		if o, c := opens.Load(), closes.Load(); o != c {
			t.Fatalf("Linger < 0, after a call: %d opens, %d closes: the store is still held", o, c)
		}
	}
	if opens.Load() != 3 {
		t.Errorf("Linger < 0: %d opens for 3 calls", opens.Load())
	}
}

// TestAdoptedStoresServeTheFirstCall: stores the caller opened (to tell at once whether
// the directory opens) serve the first call instead of a second open, and are let go like
// any others.
func TestAdoptedStoresServeTheFirstCall(t *testing.T) {
	var opens, closes atomic.Int32
	open := opener(&opens, &closes)
	r, err := New(Options{Dir: shortDir(t), Open: open, Linger: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	svc, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.Adopt(svc)
	if _, err := r.Subjects(ctx, investigate.SubjectQuery{}); err != nil {
		t.Fatal(err)
	}
	if o := opens.Load(); o != 1 {
		t.Errorf("%d opens, want 1 (the adopted stores)", o)
	}
	waitClosed(t, &opens, &closes)
}

// waitClosed waits until the stores opened were all closed (the linger ran out).
func waitClosed(t *testing.T, opens, closes *atomic.Int32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for closes.Load() != opens.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("the stores were never let go: %d opens, %d closes", opens.Load(), closes.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadsGoThroughTheRecordersSocket: a recorder's API socket in the directory takes the
// calls; the stores are never opened. When it goes away, reads fall back to the stores.
func TestReadsGoThroughTheRecordersSocket(t *testing.T) {
	dir := shortDir(t)
	var opens, closes atomic.Int32
	r, err := New(Options{Dir: dir, Open: opener(&opens, &closes)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stop := serveSocket(t, dir)
	ctx := context.Background()
	if _, err := r.Chain(ctx, incident); err != nil {
		t.Fatal(err)
	}
	if opens.Load() != 0 {
		t.Fatalf("the stores were opened %d times while the recorder serves the API", opens.Load())
	}
	stop()
	if _, err := r.Chain(ctx, incident); err != nil {
		t.Fatal(err)
	}
	if opens.Load() != 1 {
		t.Errorf("after the recorder left: %d opens, want 1", opens.Load())
	}
}

// TestWaitsForAHolderWithoutSocket: a process holding the directory without an API (here
// the test itself, holding the engine's lock) makes calls wait; a socket appearing ends the
// wait, and a holder that never lets go ends it with an error naming the socket.
func TestWaitsForAHolderWithoutSocket(t *testing.T) {
	dir := shortDir(t)
	release := holdEngineLock(t, eventlog.EmbeddedDir(dir))
	defer release()
	var opens, closes atomic.Int32
	r, err := New(Options{Dir: dir, Open: opener(&opens, &closes), Wait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	_, err = r.Chain(ctx, incident)
	if err == nil || !strings.Contains(err.Error(), client.SocketName) {
		t.Fatalf("held without socket: %v, want an error naming the socket", err)
	}
	if opens.Load() != 0 {
		t.Errorf("opened a held store %d times", opens.Load())
	}

	r.opts.Wait = time.Minute
	done := make(chan error, 1)
	go func() { _, err := r.Chain(ctx, incident); done <- err }()
	// The call is waiting (it cannot have finished: nothing answers yet) ...
	select {
	case err := <-done:
		t.Fatalf("the call returned (%v) while the directory was held without an API", err)
	case <-time.After(200 * time.Millisecond):
	}
	// ... until the holder serves its socket.
	serveSocket(t, dir)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if opens.Load() != 0 {
		t.Errorf("opened the stores %d times", opens.Load())
	}
}

// holdEngineLock takes the lock the embedded engine holds on its directory, as a recorder
// that has the store open does.
func holdEngineLock(t *testing.T, dir string) func() {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "status"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// serveSocket serves the fixture on the directory's API socket, as a recorder does.
func serveSocket(t *testing.T, dir string) (stop func()) {
	t.Helper()
	return servertest.Serve(t, server.Options{Service: investigatetest.New(10)},
		server.ListenConfig{Addr: "unix:" + client.SocketPath(dir)}).Stop
}
