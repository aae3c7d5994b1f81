package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/event"
)

// syncBuffer is a log sink the test reads while the engine writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

// TestEngineStoreFailuresLoggedOnce: a store that fails for a while and comes back is
// logged once when it fails and once when it recovers, not at every retry.
func TestEngineStoreFailuresLoggedOnce(t *testing.T) {
	logs := &syncBuffer{}
	src := bus.NewMemory(64)
	store := &memStore{failFirst: 5}
	e, done := runEngine(t, Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Source: src, Store: store,
		FlushEvery: 5 * time.Millisecond, Idle: 10 * time.Millisecond})
	src.Publish(batch(t, ev(1, 7, 150)))
	waitFor(t, "the rows written", func() bool { return len(store.snapshot()) == 1 })
	src.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.InsertRetries != 5 {
		t.Errorf("%d retries, want 5", st.InsertRetries)
	}
	if down, back := logs.count("event log write failed"), logs.count("event log writable again"); down != 1 || back != 1 {
		t.Errorf("logged the failure %d times and the recovery %d times, want once each:\n%s", down, back, logs.b.String())
	}
}

// TestEngineDrainGivesUp: with a store that never takes the rows (a full disk), an engine
// running on a context that never ends (standalone's, so that it drains the bus after the
// recorder stops) returns DrainTimeout after Drain, saying what it could not write.
func TestEngineDrainGivesUp(t *testing.T) {
	full := errors.New("event log /data/events is full (NOT_ENOUGH_SPACE)")
	src := bus.NewMemory(64)
	store := &failingStore{err: full}
	e, err := New(Options{Source: src, Store: store, FlushEvery: 5 * time.Millisecond, Idle: 10 * time.Millisecond,
		DrainTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	src.Publish(batch(t, ev(1, 7, 150), ev(2, 7, 160)))
	waitFor(t, "retried writes", func() bool { return e.Stats().InsertRetries >= 2 })
	// More input waits in the bus behind the stuck write; the stop must not wait for it.
	for i := range 10 {
		src.Publish(batch(t, ev(uint64(10+i), 7, int64(200+i))))
	}
	src.Close()
	stop := time.Now()
	e.Drain()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30 s of Drain with a 200 ms drain timeout")
	}
	if took := time.Since(stop); took < 200*time.Millisecond {
		t.Errorf("gave up %v after Drain, before the drain timeout", took)
	}
	if !errors.Is(err, full) || !strings.Contains(err.Error(), "gave up writing 2 events") {
		t.Fatalf("Run = %v, want the store's error and what was not written", err)
	}
}

type failingStore struct{ err error }

func (s *failingStore) Insert(context.Context, []event.Event) error { return s.err }

// fullErr is a store's full-disk error.
type fullErr string

func (e fullErr) Error() string  { return "event log directory /d/events is full (" + string(e) + ")" }
func (e fullErr) DiskFull() bool { return true }

// scriptedStore fails its inserts with errs, in order, then takes the rows.
type scriptedStore struct {
	mu   sync.Mutex
	errs []error
	rows int
}

func (s *scriptedStore) Insert(_ context.Context, evs []event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		return err
	}
	s.rows += len(evs)
	return nil
}

func (s *scriptedStore) written() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rows
}

// TestEngineFullStoreLoggedPerState: a full disk is logged once when it fills (not at each
// retry, whatever the store's message says then), again only when the failure changes
// kind, and StoreFull says so meanwhile.
func TestEngineFullStoreLoggedPerState(t *testing.T) {
	full := func(msg string) error { return fmt.Errorf("inserting events: %w", fullErr(msg)) }
	logs := &syncBuffer{}
	store := &scriptedStore{errs: []error{
		full("NOT_ENOUGH_SPACE"), full("ENOSPC"), full("NOT_ENOUGH_SPACE"),
		errors.New("connection refused"), errors.New("connection refused"),
		full("ENOSPC"), full("ENOSPC"),
	}}
	src := bus.NewMemory(64)
	e, done := runEngine(t, Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Source: src, Store: store,
		FlushEvery: 5 * time.Millisecond, Idle: 10 * time.Millisecond})
	src.Publish(batch(t, ev(1, 7, 150)))
	waitFor(t, "the disk reported full", e.StoreFull)
	waitFor(t, "the rows written", func() bool { return store.written() == 1 })
	if e.StoreFull() {
		t.Error("StoreFull() after the rows were written")
	}
	src.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := []int{logs.count("is full"), logs.count("connection refused"), logs.count("event log write failed"), logs.count("writable again")}
	if diff := cmp.Diff([]int{2, 1, 3, 1}, got); diff != "" {
		t.Errorf("lines logged [full, refused, failed, recovered] (-want +got):\n%s\n%s", diff, logs.b.String())
	}
}

// reservingStore is a store on a nearly full disk: an insert of more than fits rows
// fails as full (the embedded engine reserves room for a whole insert first); smaller
// ones are taken.
type reservingStore struct {
	mu       sync.Mutex
	fits     int
	rows     int
	largest  int // the largest insert taken
	attempts int
}

func (s *reservingStore) Insert(_ context.Context, evs []event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if len(evs) > s.fits {
		return fmt.Errorf("inserting events: %w", fullErr("NOT_ENOUGH_SPACE"))
	}
	s.rows += len(evs)
	s.largest = max(s.largest, len(evs))
	return nil
}

func (s *reservingStore) taken() (rows, largest, attempts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rows, s.largest, s.attempts
}

// TestEngineFullDiskCutsInsertsDown: the correlator emits more than MaxBatch at once and
// the disk takes only small inserts: the engine writes in inserts of at most MaxBatch,
// halves them while the disk is full and writes everything that fits, logging the full
// disk once and its recovery once (when the last, whole, insert is taken).
func TestEngineFullDiskCutsInsertsDown(t *testing.T) {
	const n, maxBatch, fits = 10_000, 4096, 1500
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = ev(uint64(i+1), 7, int64(100+i))
	}
	logs := &syncBuffer{}
	store := &reservingStore{fits: fits}
	src := bus.NewMemory(64)
	e, done := runEngine(t, Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), Source: src, Store: store,
		FlushEvery: 5 * time.Millisecond, Idle: 10 * time.Millisecond, MaxBatch: maxBatch})
	src.Publish(batch(t, evs...))
	src.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rows, largest, attempts := store.taken()
	if rows != n || e.Stats().Written != n {
		t.Errorf("store took %d rows, engine counts %d written, want %d", rows, e.Stats().Written, n)
	}
	if largest > fits || largest < minPiece {
		t.Errorf("largest insert taken %d rows, want between %d and %d", largest, minPiece, fits)
	}
	if attempts < 3 {
		t.Errorf("%d insert attempts: the full inserts were never tried", attempts)
	}
	got := []int{logs.count("is full"), logs.count("writable again")}
	if diff := cmp.Diff([]int{1, 1}, got); diff != "" {
		t.Errorf("lines logged [full, recovered] (-want +got):\n%s\n%s", diff, logs.b.String())
	}
}
