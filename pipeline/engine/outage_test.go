package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/event"
)

// flakySource is a source whose commits fail while it is down, as a Kafka consumer's do
// while the broker is away, and which can deliver messages again, as a consumer group does
// from its last commit once the broker is back. The real broker outage is
// TestKafkaEngineOutage (cmd/kprobe-agent); this one runs in -short.
type flakySource struct {
	ch   chan bus.Message
	down atomic.Bool

	mu        sync.Mutex
	committed map[int]int64 // partition → newest committed offset
	failed    int
}

func newFlakySource() *flakySource {
	return &flakySource{ch: make(chan bus.Message, 64), committed: map[int]int64{}}
}

func (s *flakySource) Fetch(ctx context.Context) (bus.Message, error) {
	select {
	case m := <-s.ch:
		return m, nil
	case <-ctx.Done():
		return bus.Message{}, ctx.Err()
	}
}

func (s *flakySource) Commit(_ context.Context, msgs ...bus.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down.Load() {
		s.failed++
		return errors.New("write tcp 127.0.0.1:1->127.0.0.1:2: use of closed network connection")
	}
	for _, m := range msgs {
		s.committed[m.Partition] = max(s.committed[m.Partition], m.Offset)
	}
	return nil
}

func (s *flakySource) commits() (committed map[int]int64, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int]int64{}
	for k, v := range s.committed {
		out[k] = v
	}
	return out, s.failed
}

// deliver sends the batch of one event at offset off of partition part.
func (s *flakySource) deliver(t *testing.T, part int, off int64) {
	t.Helper()
	m := batch(t, ev(uint64(part)<<32|uint64(off)+1, 7, 1000+off))
	m.Partition, m.Offset = part, off
	s.ch <- m
}

// countingStore counts every row written, to tell a duplicate write from an overwrite.
type countingStore struct {
	memStore
	rows atomic.Int64
}

func (s *countingStore) Insert(ctx context.Context, evs []event.Event) error {
	if err := s.memStore.Insert(ctx, evs); err != nil {
		return err
	}
	s.rows.Add(int64(len(evs)))
	return nil
}

// TestEngineRidesOutSourceOutage: while the source cannot commit, the engine keeps
// consuming and writing, and retries the commits; when the source delivers again from the
// last commit (a consumer group after the broker came back), what the engine already
// handled is skipped, not joined and written twice; once the source is back everything is
// committed.
func TestEngineRidesOutSourceOutage(t *testing.T) {
	src := newFlakySource()
	store := &countingStore{}
	src.down.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := New(Options{Source: src, Store: store, FlushEvery: 5 * time.Millisecond, Idle: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	for off := range int64(10) {
		src.deliver(t, int(off%2), off)
	}
	waitFor(t, "the first events written and commits failing", func() bool {
		_, failed := src.commits()
		return len(store.snapshot()) == 10 && failed >= 3
	})
	select {
	case err := <-done:
		t.Fatalf("engine stopped while its source was down: %v", err)
	default:
	}

	// The group starts again from the last commit: nothing was committed, so all of it.
	for off := range int64(10) {
		src.deliver(t, int(off%2), off)
	}
	for off := int64(10); off < 14; off++ {
		src.deliver(t, int(off%2), off)
	}
	waitFor(t, "every message handled", func() bool { return e.Stats().Messages+e.Stats().Redelivered == 24 })
	src.down.Store(false)
	want := map[int]int64{0: 12, 1: 13}
	waitFor(t, "everything committed", func() bool {
		got, _ := src.commits()
		return cmp.Equal(want, got)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}

	st := e.Stats()
	got := struct{ Messages, Redelivered, Written, Rows, Stored uint64 }{st.Messages, st.Redelivered, st.Written,
		uint64(store.rows.Load()), uint64(len(store.snapshot()))}
	wantStats := struct{ Messages, Redelivered, Written, Rows, Stored uint64 }{14, 10, 14, 14, 14}
	if diff := cmp.Diff(wantStats, got); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if st.CommitRetries == 0 {
		t.Errorf("no commit retries counted: %+v", st)
	}
}

// TestEngineShutdownWhileSourceDown: a stop requested while the source cannot commit ends
// within DrainTimeout, with everything written and an error that says what happens to the
// uncommitted input.
func TestEngineShutdownWhileSourceDown(t *testing.T) {
	src := newFlakySource()
	src.down.Store(true)
	store := &countingStore{}
	ctx, cancel := context.WithCancel(context.Background())
	e, err := New(Options{Source: src, Store: store, FlushEvery: 5 * time.Millisecond, Idle: 10 * time.Millisecond,
		DrainTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	src.deliver(t, 0, 0)
	src.deliver(t, 0, 1)
	waitFor(t, "a failed commit", func() bool { _, failed := src.commits(); return failed > 0 })
	cancel()
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20 s of the stop with a 300 ms drain timeout")
	}
	if err == nil || !strings.Contains(err.Error(), "committing offsets") || !strings.Contains(err.Error(), "read again") {
		t.Fatalf("Run = %v, want the commit failure and what it means", err)
	}
	if n := len(store.snapshot()); n != 2 {
		t.Errorf("stored %d events, want both", n)
	}
}
