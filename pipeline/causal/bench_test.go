package causal

import (
	"context"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// The causal engine's throughput in enriched events per second (run with -cpu 1: the
// engine and its feeder on one core), against two baselines measured in the same run.
// Besides wall time, each reports the CPU time it used per event (getrusage), and from it
// events per CPU-second: what one dedicated core sustains, which a shared machine's wall
// clock does not show. The baselines:
//   - index_only: the events indexed and evicted, no chain drawn (the engine's floor);
//   - rescan: each settlement's chain computed the way an on-demand query does, from a
//     fresh index of every event in its window (what the stream saves by indexing once).

// benchStream is a recorded-like stream: settlements on 4 worker threads, each with file
// writes and their flushes, a request to a peer process, page faults, preemptions; and a
// busy neighbour process whose events join nothing.
type benchStream struct {
	events []event.Event
	spans  [][]span.Span // per settlement, in end order
	ends   []int         // events[:ends[i]] cover settlement i
	window int64         // time covered
}

func newBenchStream(settlements int) *benchStream {
	w := newWorld()
	bs := &benchStream{}
	workers := make([]*thread, 4)
	for i := range workers {
		workers[i] = w.thread(100, 101+uint32(i), "settlement-svc", t0)
	}
	peer := w.thread(300, 301, "bank", t0)
	noise := w.thread(900, 901, "batch", t0)
	for k := range settlements {
		th := workers[k%len(workers)]
		th.t = max(th.t, t0+int64(k)*2*ms)
		id := strconv.Itoa(k)
		th.traceID, th.spanID = "t"+id, "s"+id
		start := th.t
		th.run(200 * us)
		for range 8 {
			th.fault()
			th.run(3 * us)
		}
		th.preempted(300*us, 900, "batch")
		th.write(0xfe00, 42+uint64(k%4), 4096, 100*us, func() { th.blocked(200*us, 5*us, 0, 0) })
		th.run(40 * us)
		th.blocked(500*us, 10*us, 77, 77)
		u := tuple("127.0.0.1:"+strconv.Itoa(40000+int(th.tid)), "127.0.0.1:7301")
		th.send(u, 64)
		th.recvAgain(u)
		at := th.t
		peer.t = max(peer.t, at+20*us)
		peer.recv(u.Reverse(), 64)
		peer.blocked(400*us, 5*us, 0, 0)
		peer.send(u.Reverse(), 16)
		th.blocked(peer.t+15*us-at, 10*us, 0, 0)
		th.recv(u, 16)
		th.run(100 * us)
		for range 4 {
			noise.t = max(noise.t, th.t-ms)
			noise.preempted(50*us, 100, "settlement-svc")
			noise.run(100 * us)
			noise.fault()
		}
		bs.spans = append(bs.spans, []span.Span{{TraceID: "t" + id, SpanID: "s" + id, Name: "settlement.process",
			Host: "n1", PID: 100, TID: th.tid, StartNs: start, EndNs: th.t, Attrs: map[string]string{"settlement.id": id}}})
		bs.ends = append(bs.ends, len(w.evs))
	}
	bs.events = w.evs
	bs.window = int64(settlements) * 2 * ms
	return bs
}

// cpuClock measures the process's CPU time (user + system) across a benchmark.
type cpuClock struct{ start time.Duration }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{cpuTime()} }

// report adds wall and CPU throughput to b.
func (c cpuClock) report(b *testing.B) {
	cpu := cpuTime() - c.start
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/cpu-s")
}

type discardWriter struct{ nodes, edges int }

func (d *discardWriter) Write(_ context.Context, g Graph) error {
	d.nodes += len(g.Nodes)
	d.edges += len(g.Edges)
	return nil
}

const benchBatch = 1024

// feed hands b.N events to add in batches, the stream repeated with its time shifted,
// and its spans as each settlement's events have gone by.
func (bs *benchStream) feed(b *testing.B, addEvents func([]event.Event), addSpans func([]span.Span)) {
	buf := make([]event.Event, 0, benchBatch)
	settled := 0
	var shift int64
	round := 0
	for i := 0; i < b.N; {
		j := i % len(bs.events)
		if j == 0 && i > 0 {
			round++
			shift = int64(round) * (bs.window + 100*ms)
			settled = 0
		}
		n := min(benchBatch, len(bs.events)-j, b.N-i)
		buf = buf[:0]
		for _, e := range bs.events[j : j+n] {
			e.TsNs += shift
			e.ID += uint64(round) << 40
			buf = append(buf, e)
		}
		addEvents(buf)
		for settled < len(bs.ends) && bs.ends[settled] <= j+n {
			ss := make([]span.Span, len(bs.spans[settled]))
			for k, s := range bs.spans[settled] {
				s.TraceID += "/" + strconv.Itoa(round)
				s.StartNs, s.EndNs = s.StartNs+shift, s.EndNs+shift
				ss[k] = s
			}
			addSpans(ss)
			settled++
		}
		i += n
	}
}

func BenchmarkEngine(b *testing.B) {
	bs := newBenchStream(4000)
	ctx := context.Background()
	b.Run("causal", func(b *testing.B) {
		d := &discardWriter{}
		e, err := NewEngine(EngineOptions{Writer: d, Lateness: 20 * 1e6, Retain: 2e9, Queue: 16})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		b.ReportAllocs()
		b.ResetTimer()
		clock := startCPU()
		go func() { done <- e.Run(ctx) }()
		bs.feed(b, func(evs []event.Event) { _ = e.AddEvents(ctx, evs) }, func(ss []span.Span) { _ = e.AddSpans(ctx, ss) })
		e.Close()
		<-done
		b.StopTimer()
		clock.report(b)
		st := e.Stats()
		if st.Drawn == 0 && b.N > 100_000 {
			b.Fatalf("no chain drawn from %d events: %+v", b.N, st)
		}
	})
	b.Run("baseline_index_only", func(b *testing.B) {
		x := NewIndex()
		var wm, evicted int64
		b.ReportAllocs()
		b.ResetTimer()
		clock := startCPU()
		bs.feed(b, func(evs []event.Event) {
			x.Add(evs)
			for i := range evs {
				wm = max(wm, evs[i].TsNs)
			}
			if wm-2e9 > evicted+2e9/2 {
				evicted = wm - 2e9
				x.Evict(evicted)
			}
		}, func([]span.Span) {})
		clock.report(b)
	})
	b.Run("baseline_rescan", func(b *testing.B) {
		// The last 2s of events kept in a plain slice; each settlement re-indexes its window.
		var kept []event.Event
		d := &discardWriter{}
		m := DefaultMapping()
		b.ReportAllocs()
		b.ResetTimer()
		clock := startCPU()
		bs.feed(b, func(evs []event.Event) {
			kept = append(kept, evs...)
			if n := len(kept); n > 0 && kept[n-1].TsNs-kept[0].TsNs > 4e9 {
				kept = append(kept[:0:0], kept[n/2:]...)
			}
		}, func(ss []span.Span) {
			// The window's events, found as an event log's range scan would (kept is in
			// arrival order, nearly sorted by time).
			x := NewIndex()
			from, to := ss[0].StartNs-contextNs, ss[0].EndNs+contextNs
			lo := sort.Search(len(kept), func(i int) bool { return kept[i].TsNs >= from-contextNs })
			hi := sort.Search(len(kept), func(i int) bool { return kept[i].TsNs >= to+contextNs })
			x.Add(kept[lo:hi])
			o := m.Objects(&ss[0])[0]
			_ = d.Write(ctx, BuildGraph(Analyze(x, Subject{Object: o, Spans: ss}), m))
		})
		clock.report(b)
	})
}
