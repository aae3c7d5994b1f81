package causal

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// incidentWorld: settlement 1 is preempted by a hog, settlement 2 is clean, each one
// span with a child carrying a payment.
func incidentWorld() (*world, []span.Span) {
	w := newWorld()
	svc := w.thread(100, 101, "settlement-svc", t0)
	var spans []span.Span
	for i, hog := range []bool{true, false} {
		id := []string{"1", "2"}[i]
		start := svc.t
		svc.traceID, svc.spanID = "t"+id, "s"+id
		svc.run(1 * ms)
		payStart := svc.t
		svc.spanID = "p" + id
		if hog {
			svc.preempted(40*ms, 900, "hog")
		}
		svc.run(2 * ms)
		payEnd := svc.t
		svc.spanID = "s" + id
		svc.run(1 * ms)
		svc.fault() // the watermark moves with the work
		spans = append(spans,
			span.Span{TraceID: "t" + id, SpanID: "p" + id, ParentID: "s" + id, Name: "payment.validate", Host: "n1", PID: 100, TID: 101,
				StartNs: payStart, EndNs: payEnd, Attrs: map[string]string{"payment.id": "PAY-" + id}},
			span.Span{TraceID: "t" + id, SpanID: "s" + id, Name: "settlement.process", Host: "n1", PID: 100, TID: 101,
				StartNs: start, EndNs: svc.t, Attrs: map[string]string{"settlement.id": id}})
		svc.run(50 * ms)
	}
	return w, spans
}

func runEngine(t *testing.T, opts EngineOptions) (*Engine, func() error) {
	t.Helper()
	e, err := NewEngine(opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	return e, func() error { e.Close(); return <-done }
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEngineDrawsOnceEventsPassTheObject(t *testing.T) {
	w, spans := incidentWorld()
	g := newMemGraph()
	e, stop := runEngine(t, EngineOptions{Writer: g, Lateness: 20 * time.Millisecond, Idle: time.Hour})
	ctx := context.Background()
	if err := e.AddSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	if err := e.AddEvents(ctx, w.evs); err != nil {
		t.Fatal(err)
	}
	// Nothing is due yet: no event is 20ms past settlement 2. An event that is draws
	// both settlements and both payments.
	// Settlement 1 and payment 1 are drawn, settlement 2 and payment 2 wait (had they
	// been drawn too, Drawn would pass 2 and this would time out).
	waitFor(t, "settlement 1 and payment 1 drawn, the others pending", func() bool {
		s := e.Stats()
		return s.Drawn == 2 && s.PendingObjects == 2
	})
	late := w.thread(100, 101, "settlement-svc", spans[3].EndNs+30*ms)
	late.fault()
	if err := e.AddEvents(ctx, w.evs[len(w.evs)-1:]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "all four objects drawn", func() bool { return e.Stats().Drawn == 4 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	got, err := ReadResult(ctx, g, "settlement", "1")
	if err != nil {
		t.Fatal(err)
	}
	want := Analyze(w.index(), Subject{Object: Object{LabelSettlement, "settlement", "1"}, Spans: spans[:2]})
	opts := []cmp.Option{cmpopts.IgnoreUnexported(Cause{}), cmpopts.IgnoreFields(Cause{}, "Key", "ResourceID"),
		cmpopts.IgnoreFields(Result{}, "Spans"), cmpopts.EquateApprox(0, 0.001)}
	if diff := cmp.Diff(want, got, opts...); diff != "" {
		t.Errorf("read back (-computed +stored):\n%s", diff)
	}
	if got.Causes[0].Kind != KindCPU || got.Causes[0].Process.PID != 900 {
		t.Errorf("settlement 1's top cause %+v, want the hog", got.Causes[0])
	}
	// The settlement includes its payment; the payment has its own chain.
	sub, err := g.Subgraph(ctx, "settlement/1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if !hasEdge(sub, "settlement/1", "payment/PAY-1", EdgeIncludes) {
		t.Errorf("no INCLUDES edge from settlement 1 to payment PAY-1 in %+v", sub.Edges)
	}
	pay, err := ReadResult(ctx, g, "payment", "PAY-1")
	if err != nil || pay.Causes[0].Kind != KindCPU || pay.DurationNs != 42*ms {
		t.Errorf("payment PAY-1: %+v, %v; want its 42ms with the hog on top", pay, err)
	}
	if _, err := ReadResult(ctx, g, "settlement", "404"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown settlement: err %v, want ErrNotFound", err)
	}
}

// Events of an object's time that come after it was drawn (a topic that lagged, a reader
// that was idle past Lateness) draw it again, once per burst, and it reads back as what
// the rules compute from all its events; objects they do not touch stay as drawn.
func TestEngineRedrawsWhenEventsComeLate(t *testing.T) {
	w, spans := incidentWorld()
	var onTime, late []event.Event
	for _, ev := range w.evs {
		if ev.Type == event.TypeSchedSwitch && ev.NextPID == 900 {
			late = append(late, ev) // the hog's preemption, held back
		} else {
			onTime = append(onTime, ev)
		}
	}
	if len(late) == 0 {
		t.Fatal("the world has no preemption to hold back")
	}
	g := newMemGraph()
	e, stop := runEngine(t, EngineOptions{Writer: g, Lateness: 20 * time.Millisecond, Idle: time.Hour})
	ctx := context.Background()
	svc := w.thread(100, 101, "settlement-svc", spans[3].EndNs+30*ms)
	pass := func() { // an event Lateness past everything so far
		svc.t += 30 * ms
		svc.fault()
		if err := e.AddEvents(ctx, w.evs[len(w.evs)-1:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.AddSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	if err := e.AddEvents(ctx, onTime); err != nil {
		t.Fatal(err)
	}
	pass()
	waitFor(t, "all four objects drawn", func() bool { return e.Stats().Drawn == 4 })
	early, err := ReadResult(ctx, g, "settlement", "1")
	if err != nil {
		t.Fatal(err)
	}
	if early.Causes[0].Kind == KindCPU {
		t.Fatalf("drawn without the preemption, settlement 1 still blames the CPU: %+v", early.Causes[0])
	}
	// The late events arrive in two batches: one redrawing, due once an event passes them.
	for _, b := range [][]event.Event{late[:len(late)/2], late[len(late)/2:]} {
		if len(b) > 0 {
			if err := e.AddEvents(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	pass()
	waitFor(t, "settlement 1 and payment 1 drawn again", func() bool { return e.Stats().Redrawn == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.Drawn != 6 || s.PendingObjects != 0 {
		t.Errorf("after close: %+v, want 4 drawings and 2 redrawings", s)
	}
	all := w.index()
	opts := []cmp.Option{cmpopts.IgnoreUnexported(Cause{}), cmpopts.IgnoreFields(Cause{}, "Key", "ResourceID"),
		cmpopts.IgnoreFields(Result{}, "Spans"), cmpopts.EquateApprox(0, 0.001)}
	for _, c := range []struct {
		kind, id string
		spans    []span.Span
	}{{"settlement", "1", spans[:2]}, {"payment", "PAY-1", spans[:1]}, {"settlement", "2", spans[2:]}} {
		got, err := ReadResult(ctx, g, c.kind, c.id)
		if err != nil {
			t.Fatal(err)
		}
		want := Analyze(all, Subject{Object: got.Object, Spans: c.spans})
		if diff := cmp.Diff(want, got, opts...); diff != "" {
			t.Errorf("%s %s read back (-all events +stored):\n%s", c.kind, c.id, diff)
		}
	}
}

func hasEdge(g Graph, from, to, typ string) bool {
	for _, e := range g.Edges {
		if e.From == from && e.To == to && e.Type == typ {
			return true
		}
	}
	return false
}

// Closing draws whatever is pending, even with no event past it; a re-sent batch
// (a retried write) changes nothing.
func TestEngineCloseDrawsPendingAndDeduplicates(t *testing.T) {
	w, spans := incidentWorld()
	g := newMemGraph()
	e, stop := runEngine(t, EngineOptions{Writer: g, Lateness: time.Hour, Retain: 2 * time.Hour})
	ctx := context.Background()
	for range 2 {
		if err := e.AddEvents(ctx, w.evs); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.AddSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.Drawn != 4 || s.PendingObjects != 0 {
		t.Errorf("after close: %+v, want all 4 drawn", s)
	}
	got, err := ReadResult(ctx, g, "settlement", "1")
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Causes[0]; c.ExplainedNs != 40*ms {
		t.Errorf("top cause explains %d ns after a duplicated batch, want 40ms once", c.ExplainedNs)
	}
	if err := e.AddEvents(ctx, w.evs); err == nil {
		t.Error("AddEvents after Close: want an error")
	}
}

type failingWriter struct{}

func (failingWriter) Write(context.Context, Graph) error { return errors.New("store down") }

func TestEngineCountsFailedWrites(t *testing.T) {
	w, spans := incidentWorld()
	e, stop := runEngine(t, EngineOptions{Writer: failingWriter{}})
	ctx := context.Background()
	_ = e.AddSpans(ctx, spans)
	_ = e.AddEvents(ctx, w.evs)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.WriteFailed != 4 || s.Drawn != 0 {
		t.Errorf("stats %+v: want 4 failed writes, none drawn", s)
	}
}

func TestEngineEvictsOldEvents(t *testing.T) {
	g := newMemGraph()
	e, stop := runEngine(t, EngineOptions{Writer: g, Lateness: time.Millisecond, Retain: 100 * time.Millisecond})
	ctx := context.Background()
	w := newWorld()
	th := w.thread(1, 1, "x", t0)
	for range 100 {
		th.fault()
		th.run(10 * ms)
	}
	_ = e.AddEvents(ctx, w.evs)
	waitFor(t, "events taken", func() bool { return e.Stats().Events == 100 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Only about Retain (plus one eviction step) of history is kept.
	if n := e.idx.Len(); n < 10 || n > 16 {
		t.Errorf("index holds %d events of 100 spread over 1s with 100ms retained", n)
	}
	_ = event.TypeRead
}

func TestSinkForwardsAfterTheStore(t *testing.T) {
	w, spans := incidentWorld()
	g := newMemGraph()
	e, stop := runEngine(t, EngineOptions{Writer: g})
	st := &recordingStore{}
	s := Sink{Next: st, Engine: e}
	ctx := context.Background()
	if err := s.InsertSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	st.fail = true
	if err := s.Insert(ctx, w.evs); err == nil {
		t.Fatal("a failed store write was not reported")
	}
	st.fail = false
	if err := s.Insert(ctx, w.evs); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if st.events != len(w.evs) || st.spans != len(spans) {
		t.Errorf("store got %d events and %d spans, want %d and %d", st.events, st.spans, len(w.evs), len(spans))
	}
	if s := e.Stats(); s.Events != uint64(len(w.evs)) || s.Drawn != 4 {
		t.Errorf("engine %+v: want only the events the store took, and all 4 objects drawn", s)
	}
}

type recordingStore struct {
	fail          bool
	events, spans int
}

func (r *recordingStore) Insert(_ context.Context, evs []event.Event) error {
	if r.fail {
		return errors.New("disk full")
	}
	r.events += len(evs)
	return nil
}

func (r *recordingStore) InsertSpans(_ context.Context, s []span.Span) error {
	r.spans += len(s)
	return nil
}

// An object drawn again (more of its spans came later) reads back as its latest drawing
// only: the earlier drawing's causes, still in the graph, are skipped.
func TestRedrawnObjectReadsLatest(t *testing.T) {
	w, spans := incidentWorld()
	g := newMemGraph()
	m := DefaultMapping()
	idx := w.index()
	obj := Object{LabelSettlement, "settlement", "1"}
	first := Analyze(idx, Subject{Object: obj, Spans: spans[:2]})
	// A cause the later drawing no longer finds.
	first.Causes = append(first.Causes, Cause{Key: "storage|gone", Kind: KindStorage, ExplainedNs: 5 * ms, Rule: RuleFileSyscall})
	if err := g.Write(context.Background(), BuildGraph(first, m)); err != nil {
		t.Fatal(err)
	}
	// A retry of settlement 1 in settlement 2's slot: no preemption there.
	retry := spans[3]
	retry.Attrs = map[string]string{"settlement.id": "1"}
	second := Analyze(idx, Subject{Object: obj, Spans: append(spans[:2:2], retry)})
	if err := g.Write(context.Background(), BuildGraph(second, m)); err != nil {
		t.Fatal(err)
	}
	got, err := ReadResult(context.Background(), g, "settlement", "1")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, c := range got.Causes {
		sum += c.ExplainedNs
	}
	if got.DurationNs != second.DurationNs || sum != second.DurationNs || len(got.Causes) != len(second.Causes) {
		t.Errorf("read back %d causes adding to %d of %d; the latest drawing has %d causes", len(got.Causes), sum, got.DurationNs, len(second.Causes))
	}
}
