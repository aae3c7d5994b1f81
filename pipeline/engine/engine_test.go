package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/correlate"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// memStore records inserts; failFirst makes the first inserts fail, as a store that is
// briefly unreachable would.
type memStore struct {
	mu        sync.Mutex
	events    map[uint64]event.Event
	inserts   int
	failFirst int
}

func (s *memStore) Insert(_ context.Context, evs []event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inserts++
	if s.inserts <= s.failFirst {
		return errors.New("store unavailable")
	}
	if s.events == nil {
		s.events = map[uint64]event.Event{}
	}
	for _, e := range evs {
		s.events[e.ID] = e
	}
	return nil
}

func (s *memStore) snapshot() map[uint64]event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[uint64]event.Event, len(s.events))
	for k, v := range s.events {
		out[k] = v
	}
	return out
}

func batch(t *testing.T, evs ...event.Event) bus.Message {
	t.Helper()
	data, err := event.MarshalBatch(evs)
	if err != nil {
		t.Fatal(err)
	}
	return bus.Message{Topic: event.TopicSyscall, Key: evs[0].Key(), Value: data}
}

func ev(id uint64, pid uint32, ts int64) event.Event {
	return event.Event{ID: id, Node: "n", PID: pid, TID: pid, Type: event.TypeWrite, TsNs: ts, Syscall: "write", FD: 3, Bytes: 1}
}

func runEngine(t *testing.T, opts Options) (*Engine, chan error) {
	t.Helper()
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	return e, done
}

func TestEngineJoinsWritesAndCommits(t *testing.T) {
	src, out := bus.NewMemory(64), bus.NewMemory(64)
	store := &memStore{failFirst: 2}
	e, done := runEngine(t, Options{Source: src, Store: store, Out: out, FlushEvery: 10 * time.Millisecond,
		Correlate: correlate.Options{Lateness: time.Millisecond}})
	if err := e.AddSpans(context.Background(), []span.Span{{TraceID: "t1", SpanID: "s1", Name: "settlement.process",
		Host: "n", PID: 7, StartNs: 100, EndNs: 200, Attrs: map[string]string{"settlement.id": "4821"}}}); err != nil {
		t.Fatal(err)
	}
	// Spans before events, as in a steady stream.
	waitFor(t, "the span to reach the correlator", func() bool { return e.Stats().Correlator.SpansIn == 1 })
	src.Publish(batch(t, ev(1, 7, 150), ev(2, 7, 250)))
	src.Publish(bus.Message{Topic: event.TopicSyscall, Value: []byte("not protobuf")})
	src.Publish(batch(t, ev(3, 8, 300)))
	src.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := store.snapshot()
	if len(got) != 3 {
		t.Fatalf("stored %d events, want 3: %v", len(got), got)
	}
	if g := got[1]; g.TraceID != "t1" || g.Attrs["settlement.id"] != "4821" {
		t.Errorf("event 1 not joined to the settlement span: %+v", g)
	}
	if g := got[2]; g.TraceID != "" {
		t.Errorf("event 2 (outside the span) joined: %+v", g)
	}
	st := e.Stats()
	if st.DeadLettered != 1 || st.InsertRetries != 2 || st.Written != 3 {
		t.Errorf("stats = %+v, want 1 dead-lettered, 2 retries, 3 written", st)
	}
	if c := src.Stats().Committed; c != 3 {
		t.Errorf("committed %d messages, want all 3", c)
	}
	// kernel.enriched carries the joined events; the dead-letter topic the poison message.
	topics := map[string]int{}
	out.Close()
	for {
		m, err := out.Fetch(context.Background())
		if err != nil {
			break
		}
		topics[m.Topic]++
		if m.Topic == event.TopicDeadLetter && string(m.Value) != "not protobuf" {
			t.Errorf("dead letter lost the original bytes: %q", m.Value)
		}
	}
	if topics[event.TopicEnriched] == 0 || topics[event.TopicDeadLetter] != 1 {
		t.Errorf("published %v, want enriched batches and one dead letter", topics)
	}
}

// blockingSource never closes; it lets the test see what was committed while running.
type recordingSource struct {
	*bus.Memory
	mu        sync.Mutex
	committed []int64
}

func (s *recordingSource) commits() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int64(nil), s.committed...)
}

func (s *recordingSource) Commit(ctx context.Context, msgs ...bus.Message) error {
	s.mu.Lock()
	for _, m := range msgs {
		s.committed = append(s.committed, m.Offset)
	}
	s.mu.Unlock()
	return s.Memory.Commit(ctx, msgs...)
}

// TestEngineCommitsOnlyWhatIsWritten: a batch is committed once it is in the store, and
// never while the store refuses it. The engine is seen to try (and retry) the write
// before the test stops it, so "nothing committed" is not merely "nothing ran".
func TestEngineCommitsOnlyWhatIsWritten(t *testing.T) {
	tests := []struct {
		name          string
		failFirst     int
		wantCommitted []int64
	}{
		{"store up", 0, []int64{0}},
		{"store never comes up", 1 << 30, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &recordingSource{Memory: bus.NewMemory(64)}
			store := &memStore{failFirst: tt.failFirst}
			ctx, cancel := context.WithCancel(context.Background())
			e, err := New(Options{Source: src, Store: store, FlushEvery: 5 * time.Millisecond, Idle: 10 * time.Millisecond,
				DrainTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			src.Publish(batch(t, ev(1, 7, 150)))
			if tt.wantCommitted != nil {
				waitFor(t, "the commit", func() bool { return len(src.commits()) > 0 })
			} else {
				waitFor(t, "a retried insert", func() bool { return e.Stats().InsertRetries >= 2 })
			}
			cancel()
			<-done
			if diff := cmp.Diff(tt.wantCommitted, src.commits()); diff != "" {
				t.Errorf("committed offsets (-want +got):\n%s", diff)
			}
			if st := e.Stats(); st.Events != 1 {
				t.Errorf("engine consumed %d events, want 1", st.Events)
			}
		})
	}
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPendingCommitsPrefixPerPartition(t *testing.T) {
	p := newPending()
	m := func(part int, off int64) bus.Message { return bus.Message{Topic: "t", Partition: part, Offset: off} }
	p.add(m(0, 0), 10)
	p.add(m(0, 1), 30)
	p.add(m(0, 2), 20)
	p.add(m(1, 0), 5)
	got := p.ready(func(string) int64 { return 25 })
	offs := map[int]int64{}
	for _, g := range got {
		offs[g.Partition] = g.Offset
	}
	if len(got) != 2 || offs[0] != 0 || offs[1] != 0 {
		t.Fatalf("ready(25) = %+v, want partition 0 offset 0 and partition 1 offset 0", got)
	}
	// Offset 2 is safe but waits behind offset 1.
	if got := p.ready(func(string) int64 { return 25 }); len(got) != 0 {
		t.Fatalf("ready again = %+v, want nothing", got)
	}
	if got := p.ready(func(string) int64 { return 31 }); len(got) != 1 || got[0].Offset != 2 {
		t.Fatalf("ready(31) = %+v, want offset 2", got)
	}
	if p.len() != 0 {
		t.Fatalf("%d still pending", p.len())
	}
}

// spanMemStore is a memStore that also keeps spans, as the event log does.
type spanMemStore struct {
	memStore
	spans []span.Span
}

func (s *spanMemStore) InsertSpans(_ context.Context, spans []span.Span) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.spans = append(s.spans, spans...)
	return nil
}
