package correlate

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// naiveJoin is the specification written as plainly as possible: among the spans of the
// event's host and pid containing its time, the innermost on its own thread, else the
// innermost that names no thread; ties go to the earlier arrival.
func naiveJoin(spans []span.Span, e event.Event) (string, string) {
	pick := func(tid uint32) string {
		var best *span.Span
		for i := range spans {
			s := &spans[i]
			if s.Host != e.Node || s.PID != e.PID || s.TID != tid || s.StartNs > e.TsNs || s.EndNs < e.TsNs {
				continue
			}
			if best == nil || s.StartNs > best.StartNs || (s.StartNs == best.StartNs && s.EndNs < best.EndNs) {
				best = s
			}
		}
		if best == nil {
			return ""
		}
		return best.SpanID
	}
	if e.TID != 0 {
		if id := pick(e.TID); id != "" {
			return id, JoinTID
		}
	}
	if id := pick(0); id != "" {
		return id, JoinPID
	}
	return "", ""
}

type delivery struct {
	at int64
	s  *span.Span
	e  *event.Event
}

// TestMatchesNaive streams random spans and events with skew below the lateness, so
// every span an event needs arrives before the watermark passes it: the join must then
// equal naiveJoin over all spans.
func TestMatchesNaive(t *testing.T) {
	const (
		horizon  = 2_000_000
		maxDur   = 5_000
		skew     = 10_000
		lateness = 20_000
	)
	for seed := range uint64(5) {
		rng := rand.New(rand.NewPCG(seed, 1))
		var spans []span.Span
		for i := range 2000 {
			start := rng.Int64N(horizon)
			s := span.Span{
				TraceID: "t", SpanID: fmt.Sprint(i), Host: "h", PID: uint32(1 + rng.IntN(3)),
				TID: uint32(rng.IntN(4)), StartNs: start, EndNs: start + rng.Int64N(maxDur),
			}
			if rng.IntN(10) == 0 {
				s.EndNs = s.StartNs // zero-length
			}
			spans = append(spans, s)
		}
		var evs []event.Event
		for i := range 5000 {
			evs = append(evs, event.Event{ID: uint64(i), Node: "h", PID: uint32(1 + rng.IntN(3)), TID: uint32(rng.IntN(5)), TsNs: rng.Int64N(horizon + maxDur)})
		}
		var ds []delivery
		for i := range spans {
			ds = append(ds, delivery{at: spans[i].EndNs + rng.Int64N(skew), s: &spans[i]})
		}
		for i := range evs {
			ds = append(ds, delivery{at: evs[i].TsNs + rng.Int64N(skew), e: &evs[i]})
		}
		slices.SortStableFunc(ds, func(a, b delivery) int { return int(a.at - b.at) })
		// The ties rule needs arrival order: sort the oracle's spans as delivered.
		var arrived []span.Span
		for _, d := range ds {
			if d.s != nil {
				arrived = append(arrived, *d.s)
			}
		}

		type res struct {
			Ts           int64
			PID, TID     uint32
			SpanID, Join string
		}
		wantByID := make([]res, len(evs))
		for i, e := range evs {
			id, how := naiveJoin(arrived, e)
			wantByID[i] = res{e.TsNs, e.PID, e.TID, id, how}
		}

		for _, linear := range []bool{false, true} {
			t.Run(fmt.Sprintf("seed=%d/linear=%v", seed, linear), func(t *testing.T) {
				c := New(Options{Lateness: lateness, MaxSpanLag: 10 * lateness})
				c.linear = linear
				var got []event.Event
				emit := func(e []event.Event) { got = append(got, e...) }
				var sb []span.Span
				var eb []event.Event
				for i, d := range ds {
					if d.s != nil {
						sb = append(sb, *d.s)
					} else {
						eb = append(eb, *d.e)
					}
					if i%37 == 0 || i == len(ds)-1 {
						c.AddSpans(sb)
						c.AddEvents(eb, emit)
						sb, eb = sb[:0], eb[:0]
					}
				}
				c.Flush(emit)
				if len(got) != len(evs) {
					t.Fatalf("emitted %d events, want %d", len(got), len(evs))
				}
				if !slices.IsSortedFunc(got, byTime) {
					t.Error("events not emitted in time order")
				}
				var want, have []res
				for _, e := range got {
					want = append(want, wantByID[e.ID])
					have = append(have, res{e.TsNs, e.PID, e.TID, e.SpanID, e.Join})
				}
				if diff := cmp.Diff(want, have); diff != "" {
					t.Errorf("join differs from the naive one (-want +got):\n%s", diff)
				}
				st := c.Stats()
				if st.LateEvents != 0 || st.ForcedFlushes != 0 {
					t.Errorf("late %d, forced %d: want none", st.LateEvents, st.ForcedFlushes)
				}
				if st.SpansExpired == 0 {
					t.Error("no span expired: eviction untested")
				}
			})
		}
	}
}
