package server_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/api/live"
	"github.com/kprobe/kprobe/api/server"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/pipeline/span"
)

// memWriter is the store behind the tap: it keeps what it was given.
type memWriter struct{ events []event.Event }

func (m *memWriter) Insert(ctx context.Context, evs []event.Event) error {
	m.events = append(m.events, evs...)
	return nil
}

func TestStreamLive(t *testing.T) {
	hub := live.NewHub()
	ln := serve(t, server.Options{Service: newFake(0), Live: hub}, server.ListenConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := dial(t, client.Options{Addr: ln.Addr()})
	all, err := c.Live(ctx, client.LiveFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	reads, err := c.Live(ctx, client.LiveFilter{PID: 7, Types: []event.Type{event.TypeRead}})
	if err != nil {
		t.Fatal(err)
	}
	defer reads.Close()
	if n := hub.Subscribers(); n != 2 {
		t.Fatalf("%d subscribers once Live returned, want 2", n)
	}

	tap := live.Tap{W: &memWriter{}, Hub: hub}
	evs := []event.Event{
		{ID: 1, TsNs: 10, PID: 7, Type: event.TypeRead, Node: "n1"},
		{ID: 2, TsNs: 11, PID: 7, Type: event.TypeWrite, Node: "n1"},
		{ID: 3, TsNs: 12, PID: 8, Type: event.TypeRead, Node: "n1"},
	}
	if err := tap.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	spans := []span.Span{
		{TraceID: "t1", SpanID: "a", Name: "settle", Host: "n1", PID: 7, StartNs: 100, EndNs: 400, Status: "ok",
			Attrs: map[string]string{"settlement.id": "4821"}},
		{TraceID: "t1", SpanID: "b", Name: "ledger.post", Host: "n1", PID: 7, StartNs: 150, EndNs: 500, Status: "error",
			Attrs: map[string]string{"settlement.id": "4821", "payment.id": "PAY-1"}},
		{TraceID: "t2", SpanID: "c", Name: "noise", Host: "n1", PID: 7, StartNs: 1, EndNs: 2},
	}
	if err := tap.InsertSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}

	// The unfiltered stream sees every event, then the two subjects the spans carry.
	var got []uint64
	var subs []investigate.Subject
	for len(got) < 3 || len(subs) < 2 {
		u, err := all.Next()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range u.Events {
			got = append(got, e.ID)
		}
		subs = append(subs, u.Subjects...)
	}
	if d := cmp.Diff([]uint64{1, 2, 3}, got); d != "" {
		t.Errorf("live events (-want +got):\n%s", d)
	}
	want := []investigate.Subject{
		{Kind: "settlement", ID: "4821", StartNs: 100, DurationNs: 400, Status: "error", TraceID: "t1", Node: "n1", PID: 7, Spans: 2},
		{Kind: "payment", ID: "PAY-1", StartNs: 150, DurationNs: 350, Status: "error", TraceID: "t1", Node: "n1", PID: 7, Spans: 1},
	}
	sortSubjects(subs)
	sortSubjects(want)
	if d := cmp.Diff(want, subs); d != "" {
		t.Errorf("live subjects (-want +got):\n%s", d)
	}
	// The filtered one only pid 7's reads.
	u, err := reads.Next()
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Events) != 1 || u.Events[0].ID != 1 {
		t.Errorf("filtered stream: %+v, want event 1 only", u.Events)
	}
}

func sortSubjects(s []investigate.Subject) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j].Kind < s[i].Kind {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

// TestStreamLiveCountsWhatASlowReaderMisses: a subscriber that does not read never holds
// the writer up; what it missed is counted and reported.
func TestStreamLiveCountsWhatASlowReaderMisses(t *testing.T) {
	hub := live.NewHub()
	sub := hub.Subscribe(2)
	for i := range 5 {
		hub.Publish([]event.Event{{ID: uint64(i)}, {ID: uint64(100 + i)}}, nil)
	}
	if got := sub.Missed(); got != 6 {
		t.Errorf("missed %d, want 6 (3 batches of 2 past a buffer of 2)", got)
	}
	sub.Close()
	if _, ok := <-sub.C(); !ok {
		t.Error("buffered batches are lost on Close")
	}

	ln := serve(t, server.Options{Service: newFake(0), Live: hub, LiveBuffer: 1}, server.ListenConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := dial(t, client.Options{Addr: ln.Addr()}).Live(ctx, client.LiveFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Publish faster than the client reads: the stream's messages say how much was missed.
	var missed uint64
	for i := 0; missed == 0; i++ {
		hub.Publish([]event.Event{{ID: uint64(i), Type: event.TypeRead}}, nil)
		if i%64 == 63 {
			for {
				u, err := s.Next()
				if err != nil {
					t.Fatal(err)
				}
				missed = max(missed, u.Missed)
				if len(u.Events) > 0 {
					break
				}
			}
		}
	}
}

func TestStreamLiveWithoutEngine(t *testing.T) {
	ln := serve(t, server.Options{Service: newFake(0)}, server.ListenConfig{})
	_, err := dial(t, client.Options{Addr: ln.Addr()}).Live(context.Background(), client.LiveFilter{})
	wantCode(t, "live without engine", err, connect.CodeUnavailable)
}
