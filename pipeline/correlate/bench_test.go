package correlate

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// sim is a node running pids×tids worker threads, each processing settlements back to
// back: a 10 ms settlement.process span with four children. Spans are exported 100 ms
// after they end; kernel events arrive perStep per simulated ms, spread over the threads.
type sim struct {
	rng     *rand.Rand
	now     int64 // ns
	pids    int
	tids    int
	next    []int64 // per thread: index of the next settlement to export
	spans   []span.Span
	batch   []event.Event
	ids     int
	perStep int
}

const (
	simStep       = int64(time.Millisecond)
	simSettlement = 10 * simStep
	simExport     = 100 * simStep
)

func newSim(pids, tids, perStep int) *sim {
	return &sim{rng: rand.New(rand.NewPCG(1, 2)), now: 1_700_000_000 * int64(time.Second),
		pids: pids, tids: tids, next: make([]int64, pids*tids), perStep: perStep,
		batch: make([]event.Event, perStep)}
}

func (s *sim) settlementStart(thread int, k int64) int64 {
	return 1_700_000_000*int64(time.Second) + k*simSettlement + int64(thread)*97_000
}

// step advances one ms: the spans whose export is due, and a batch of events.
func (s *sim) step() ([]span.Span, []event.Event) {
	s.now += simStep
	s.spans = s.spans[:0]
	for th := range s.next {
		pid, tid := uint32(1000+th/s.tids), uint32(2000+th)
		for {
			k := s.next[th]
			start := s.settlementStart(th, k)
			if start+simSettlement-simStep+simExport > s.now {
				break
			}
			s.next[th]++
			s.ids++
			trace := strconv.Itoa(s.ids)
			root := span.Span{TraceID: trace, SpanID: "r", Name: "settlement.process", Service: "settlement-svc",
				Host: "node-a", PID: pid, TID: tid, StartNs: start, EndNs: start + simSettlement - simStep,
				Attrs: map[string]string{"settlement.id": trace}}
			for j, name := range []string{"payment.validate", "payment.validate", "ledger.write", "clearing.confirm"} {
				c := root
				c.SpanID, c.ParentID, c.Name = strconv.Itoa(j), "r", name
				c.StartNs = start + int64(j)*2*simStep + simStep/2
				c.EndNs = c.StartNs + 3*simStep/2
				c.Attrs = nil
				if name == "payment.validate" {
					c.Attrs = map[string]string{"payment.id": "PAY-" + strconv.Itoa(j)}
				}
				s.spans = append(s.spans, c)
			}
			s.spans = append(s.spans, root)
		}
	}
	threads := s.pids * s.tids
	for i := range s.batch[:s.perStep] {
		th := s.rng.IntN(threads)
		s.batch[i] = event.Event{TsNs: s.now - simStep + s.rng.Int64N(simStep), Node: "node-a",
			PID: uint32(1000 + th/s.tids), TID: uint32(2000 + th), Type: event.TypeSchedSwitch}
	}
	return s.spans, s.batch[:s.perStep]
}

// BenchmarkCorrelate measures the whole correlator (buffering, watermark, eviction and
// join) at steady state with about 2,000 spans retained per thread, against the same
// correlator with the span search replaced by a linear scan of the thread's spans.
func BenchmarkCorrelate(b *testing.B) {
	for _, bc := range []struct {
		name   string
		linear bool
	}{{"indexed", false}, {"linear-scan", true}} {
		b.Run(bc.name, func(b *testing.B) {
			// 250 events per simulated ms: 500k events wait out the 2 s lateness.
			const perStep = 250
			c := New(Options{Lateness: 2 * time.Second, MaxBufferedEvents: 1 << 20})
			c.linear = bc.linear
			s := newSim(8, 4, perStep)
			emitted := 0
			emit := func(evs []event.Event) { emitted += len(evs) }
			// Warm up to steady state: 4 s fills the span index, then 2.5 s at full rate
			// grows the event buffer to its working size outside the timed loop.
			for i := range 6500 {
				if i < 4000 {
					s.perStep = 10
				} else {
					s.perStep = perStep
				}
				sp, ev := s.step()
				c.AddSpans(sp)
				c.AddEvents(ev, emit)
			}
			before := c.Stats()
			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for n < b.N {
				sp, ev := s.step()
				c.AddSpans(sp)
				c.AddEvents(ev, emit)
				n += len(ev)
			}
			b.StopTimer()
			st := c.Stats()
			joined := st.JoinedTID + st.JoinedPID - before.JoinedTID - before.JoinedPID
			out := joined + st.Unmatched - before.Unmatched
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			if out > 0 {
				b.ReportMetric(100*float64(joined)/float64(out), "%joined")
			}
			b.ReportMetric(float64(st.RetainedSpans)/float64(8*4), "spans/thread")
			if st.ForcedFlushes > 0 || st.LateEvents > 0 {
				b.Errorf("forced flushes %d, late events %d: the benchmark should need neither", st.ForcedFlushes, st.LateEvents)
			}
		})
	}
}

// BenchmarkLookup measures the span search alone: one event against the spans retained
// at steady state (about 2,000 per thread), indexed and by linear scan.
func BenchmarkLookup(b *testing.B) {
	c := New(Options{Lateness: 2 * time.Second})
	s := newSim(8, 4, 10)
	for range 4000 {
		sp, ev := s.step()
		c.AddSpans(sp)
		c.AddEvents(ev, func([]event.Event) {})
	}
	// Events from the middle of what is retained: inside or between settlements.
	lo, hi := c.wm-c.lateness, c.wm
	rng := rand.New(rand.NewPCG(3, 4))
	evs := make([]event.Event, 4096)
	for i := range evs {
		th := rng.IntN(32)
		evs[i] = event.Event{TsNs: lo + rng.Int64N(hi-lo), Node: "node-a", PID: uint32(1000 + th/4), TID: uint32(2000 + th)}
	}
	for _, bc := range []struct {
		name   string
		linear bool
	}{{"indexed", false}, {"linear-scan", true}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			found := 0
			i := 0
			for b.Loop() {
				e := &evs[i&4095]
				if s, _, _ := c.idx.lookup(e, c.evMax, bc.linear); s != nil {
					found++
				}
				i++
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(100*float64(found)/float64(i), "%joined")
		})
	}
}
