package correlate

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

const (
	host = "node-a"
	pid  = 2847
)

// sp is a span of the test process; attrs are key, value pairs.
func sp(name, id, parent string, tid uint32, start, end int64, attrs ...string) span.Span {
	s := span.Span{
		TraceID: "t1", SpanID: id, ParentID: parent, Name: name, Service: "settlement-svc",
		Host: host, PID: pid, TID: tid, StartNs: start, EndNs: end,
	}
	if len(attrs) > 0 {
		s.Attrs = map[string]string{}
		for i := 0; i+1 < len(attrs); i += 2 {
			s.Attrs[attrs[i]] = attrs[i+1]
		}
	}
	return s
}

func ev(ts int64, tid uint32) event.Event {
	return event.Event{TsNs: ts, Node: host, PID: pid, TID: tid, Type: event.TypeWrite}
}

// joined is what a test checks of an emitted event.
type joined struct {
	Ts    int64
	TID   uint32
	Span  string
	Join  string
	Attrs map[string]string
}

func project(evs []event.Event) []joined {
	var out []joined
	for _, e := range evs {
		if e.Join != "" && e.TraceID != "t1" {
			panic("trace id not copied")
		}
		out = append(out, joined{e.TsNs, e.TID, e.SpanName, e.Join, e.Attrs})
	}
	return out
}

type step struct {
	spans  []span.Span
	events []event.Event
	flush  bool
	want   []joined // emitted by this step, in order
}

// runSteps feeds each step and checks what it emitted.
func runSteps(t *testing.T, c *Correlator, steps []step) {
	t.Helper()
	for i, s := range steps {
		var got []event.Event
		emit := func(evs []event.Event) { got = append(got, evs...) }
		if s.spans != nil {
			c.AddSpans(s.spans)
		}
		if s.events != nil {
			c.AddEvents(s.events, emit)
		}
		if s.flush {
			c.Flush(emit)
		}
		if diff := cmp.Diff(s.want, project(got)); diff != "" {
			t.Errorf("step %d emitted (-want +got):\n%s", i, diff)
		}
	}
}

func attrs(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// testOptions: lateness 10 ns and a span lag of 1000 ns keep the arithmetic readable.
func testOptions() Options {
	return Options{Lateness: 10, MaxSpanLag: 1000}
}

func TestJoin(t *testing.T) {
	settlement := sp("settlement.process", "s", "", 7, 0, 100, "settlement.id", "4821", "http.route", "/x")
	ledger := sp("ledger.write", "l", "s", 7, 20, 40, "payment.id", "PAY-98721")
	fsync := sp("ledger.fsync", "f", "l", 7, 30, 35)
	sAttrs := attrs("settlement.id", "4821")
	lAttrs := attrs("settlement.id", "4821", "payment.id", "PAY-98721")

	tests := []struct {
		name   string
		spans  []span.Span
		events []event.Event
		want   []joined
	}{
		{
			name:   "nested spans, innermost wins, boundaries inclusive",
			spans:  []span.Span{fsync, ledger, settlement},
			events: []event.Event{ev(-1, 7), ev(0, 7), ev(10, 7), ev(20, 7), ev(30, 7), ev(35, 7), ev(36, 7), ev(40, 7), ev(41, 7), ev(100, 7), ev(101, 7)},
			want: []joined{
				{Ts: -1, TID: 7},
				{0, 7, "settlement.process", JoinTID, sAttrs},
				{10, 7, "settlement.process", JoinTID, sAttrs},
				{20, 7, "ledger.write", JoinTID, lAttrs},
				{30, 7, "ledger.fsync", JoinTID, lAttrs},
				{35, 7, "ledger.fsync", JoinTID, lAttrs},
				{36, 7, "ledger.write", JoinTID, lAttrs},
				{40, 7, "ledger.write", JoinTID, lAttrs},
				{41, 7, "settlement.process", JoinTID, sAttrs},
				{100, 7, "settlement.process", JoinTID, sAttrs},
				{Ts: 101, TID: 7},
			},
		},
		{
			name: "a span on the event's thread wins over a pid-only one, even an inner one",
			spans: []span.Span{
				sp("request", "r", "", 0, 0, 100, "order.id", "O-1"),
				sp("match", "m", "r", 0, 40, 60),
				sp("worker", "w", "r", 9, 0, 50),
			},
			events: []event.Event{ev(45, 9), ev(45, 8), ev(55, 9), ev(70, 0)},
			want: []joined{
				{45, 9, "worker", JoinTID, attrs("order.id", "O-1")},
				{45, 8, "match", JoinPID, attrs("order.id", "O-1")},
				{55, 9, "match", JoinPID, attrs("order.id", "O-1")},
				{70, 0, "request", JoinPID, attrs("order.id", "O-1")},
			},
		},
		{
			name:   "a span on another thread does not take the event",
			spans:  []span.Span{settlement},
			events: []event.Event{ev(49, 7), ev(50, 8), ev(50, 0)},
			want:   []joined{{49, 7, "settlement.process", JoinTID, sAttrs}, {Ts: 50, TID: 8}, {Ts: 50}},
		},
		{
			name:   "a thread.id that is none of the process's threads joins on the process",
			spans:  []span.Span{settlement},
			events: []event.Event{ev(50, 8), ev(50, 0)},
			want:   []joined{{50, 8, "settlement.process", JoinPID, sAttrs}, {50, 0, "settlement.process", JoinPID, sAttrs}},
		},
		{
			name:  "other host or pid is unmatched",
			spans: []span.Span{settlement},
			events: func() []event.Event {
				a, b := ev(50, 7), ev(50, 7)
				a.Node = "node-b"
				b.PID = 1
				return []event.Event{a, b}
			}(),
			want: []joined{{Ts: 50, TID: 7}, {Ts: 50, TID: 7}},
		},
		{
			name: "identical ranges: the earlier arrival (the child) is inner",
			spans: []span.Span{
				sp("child", "c", "p", 7, 10, 20, "payment.id", "PAY-1"),
				sp("parent", "p", "", 7, 10, 20, "settlement.id", "1"),
			},
			events: []event.Event{ev(15, 7)},
			want:   []joined{{15, 7, "child", JoinTID, attrs("settlement.id", "1", "payment.id", "PAY-1")}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, linear := range []bool{false, true} {
				c := New(testOptions())
				c.linear = linear
				runSteps(t, c, []step{{spans: tt.spans}, {events: tt.events, flush: true, want: tt.want}})
			}
		})
	}
}

func TestWatermark(t *testing.T) {
	settlement := sp("settlement.process", "s", "", 7, 0, 100, "settlement.id", "4821")
	ledger := sp("ledger.write", "l", "s", 7, 20, 40, "payment.id", "PAY-98721")
	sAttrs := attrs("settlement.id", "4821")
	lAttrs := attrs("settlement.id", "4821", "payment.id", "PAY-98721")

	tests := []struct {
		name      string
		opts      *Options // nil: testOptions
		steps     []step
		wantStats Stats
	}{
		{
			name: "events wait for spans that arrive later",
			steps: []step{
				{events: []event.Event{ev(30, 7), ev(50, 7)}}, // no spans yet: wait
				{spans: []span.Span{ledger}},                  // span stream at 40: watermark 30
				{events: []event.Event{ev(45, 7)}, want: []joined{{30, 7, "ledger.write", JoinTID, attrs("payment.id", "PAY-98721")}}},
				{spans: []span.Span{settlement}}, // both streams past 50 now
				{events: []event.Event{ev(120, 7)}, want: []joined{
					{45, 7, "settlement.process", JoinTID, sAttrs},
					{50, 7, "settlement.process", JoinTID, sAttrs},
				}},
				{flush: true, want: []joined{{Ts: 120, TID: 7}}},
			},
			wantStats: Stats{EventsIn: 4, JoinedTID: 3, Unmatched: 1, UnmatchedNoSpan: 1, SpansIn: 2, SpansLate: 1, SpansExpired: 1, RetainedSpans: 1, WatermarkNs: 90},
		},
		{
			name: "ancestor attributes arriving after the child, before the watermark",
			steps: []step{
				{spans: []span.Span{sp("fsync", "f", "l", 7, 30, 35)}},
				{events: []event.Event{ev(32, 7)}},
				{spans: []span.Span{settlement}}, // the grandparent, before the parent
				{spans: []span.Span{ledger}},
				{events: []event.Event{ev(200, 7)}, want: []joined{{32, 7, "fsync", JoinTID, lAttrs}}},
			},
			wantStats: Stats{EventsIn: 2, JoinedTID: 1, SpansIn: 3, SpansLate: 2, SpansExpired: 2, BufferedEvents: 1, RetainedSpans: 1, WatermarkNs: 90},
		},
		{
			name: "a span later than the watermark is missed: the event goes out unmatched",
			steps: []step{
				{spans: []span.Span{otherProcess(sp("other", "o", "", 9, 0, 500))}},
				{events: []event.Event{ev(50, 7), ev(300, 7)}, want: []joined{{Ts: 50, TID: 7}}},
				{spans: []span.Span{settlement}},
				{flush: true, want: []joined{{Ts: 300, TID: 7}}},
			},
			wantStats: Stats{EventsIn: 2, Unmatched: 2, UnmatchedNoPID: 1, UnmatchedNoSpan: 1, SpansIn: 2, SpansLate: 1, SpansNoEvents: 2, RetainedSpans: 2, WatermarkNs: 290},
		},
		{
			name: "a late event is emitted at once, joined while its span is held",
			steps: []step{
				{spans: []span.Span{settlement, sp("next", "n", "", 7, 200, 300)}},
				{events: []event.Event{ev(105, 7)}},
				{events: []event.Event{ev(115, 7)}, want: []joined{{Ts: 105, TID: 7}}}, // watermark 105
				// 95 is behind the watermark, but settlement (end 100) is held until 100+10.
				{events: []event.Event{ev(95, 7)}, want: []joined{{95, 7, "settlement.process", JoinTID, sAttrs}}},
			},
			wantStats: Stats{EventsIn: 3, JoinedTID: 1, Unmatched: 1, UnmatchedNoSpan: 1, LateEvents: 1, SpansIn: 2, SpansNoEvents: 1, BufferedEvents: 1, RetainedSpans: 2, WatermarkNs: 105},
		},
		{
			name: "spans expire once the watermark passes their end plus lateness",
			steps: []step{
				{spans: []span.Span{settlement, sp("next", "n", "", 7, 200, 300)}},
				{events: []event.Event{ev(150, 7)}},
				{events: []event.Event{ev(290, 7)}, want: []joined{{Ts: 150, TID: 7}}}, // watermark 280: settlement expires
				{events: []event.Event{ev(99, 7)}, want: []joined{{Ts: 99, TID: 7}}},   // too late now
			},
			wantStats: Stats{EventsIn: 3, Unmatched: 2, UnmatchedNoSpan: 2, LateEvents: 1, SpansIn: 2, SpansNoEvents: 2, SpansExpired: 1, BufferedEvents: 1, RetainedSpans: 1, WatermarkNs: 280},
		},
		{
			name: "with no spans at all events wait MaxSpanLag",
			steps: []step{
				{events: []event.Event{ev(0, 7), ev(500, 7)}},
				{events: []event.Event{ev(1001, 7)}, want: []joined{{Ts: 0, TID: 7}}},
			},
			wantStats: Stats{EventsIn: 3, Unmatched: 1, UnmatchedNoHost: 1, BufferedEvents: 2, WatermarkNs: 1},
		},
		{
			name: "out of order events come out in time order",
			opts: &Options{Lateness: 100, MaxSpanLag: 1000},
			steps: []step{
				{spans: []span.Span{otherProcess(sp("far", "x", "", 9, 0, 1000))}},
				{events: []event.Event{ev(50, 7), ev(10, 7), ev(30, 7)}},
				{events: []event.Event{ev(40, 7), ev(20, 7), ev(60, 7)}},
				{flush: true, want: []joined{
					{Ts: 10, TID: 7}, {Ts: 20, TID: 7}, {Ts: 30, TID: 7}, {Ts: 40, TID: 7}, {Ts: 50, TID: 7}, {Ts: 60, TID: 7},
				}},
			},
			wantStats: Stats{EventsIn: 6, Unmatched: 6, UnmatchedNoPID: 6, SpansIn: 1, SpansNoEvents: 1, RetainedSpans: 1, WatermarkNs: -40},
		},
		{
			name: "the buffer cap flushes the oldest early",
			opts: &Options{Lateness: 10, MaxSpanLag: 1000, MaxBufferedEvents: 2},
			steps: []step{
				{events: []event.Event{ev(10, 7), ev(20, 7), ev(30, 7)}, want: []joined{{Ts: 10, TID: 7}}},
				{events: []event.Event{ev(40, 7)}, want: []joined{{Ts: 20, TID: 7}}},
			},
			wantStats: Stats{EventsIn: 4, Unmatched: 2, UnmatchedNoHost: 2, ForcedFlushes: 2, BufferedEvents: 2, WatermarkNs: 40 - 1000},
		},
		{
			name: "the span cap drops those that ended first",
			opts: &Options{Lateness: 10, MaxSpanLag: 1000, MaxSpans: 2},
			steps: []step{
				{spans: []span.Span{ledger, settlement, sp("next", "n", "", 7, 200, 300)}},
				{events: []event.Event{ev(30, 7)}, flush: true, want: []joined{{30, 7, "settlement.process", JoinTID, sAttrs}}},
			},
			wantStats: Stats{EventsIn: 1, JoinedTID: 1, SpansIn: 3, SpansNoEvents: 2, SpansForcedOut: 1, RetainedSpans: 2, WatermarkNs: 20},
		},
		{
			name: "duplicate and invalid spans",
			steps: []step{
				{spans: []span.Span{settlement, sp("again", "s", "", 7, 0, 100), sp("bad", "b", "", 7, 10, 5), sp("noid", "", "", 7, 0, 1)}},
				{events: []event.Event{ev(50, 7)}, flush: true, want: []joined{{50, 7, "settlement.process", JoinTID, sAttrs}}},
			},
			wantStats: Stats{EventsIn: 1, JoinedTID: 1, SpansIn: 4, DuplicateSpans: 1, InvalidSpans: 2, RetainedSpans: 1, WatermarkNs: 40},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			if tt.opts != nil {
				opts = *tt.opts
			}
			c := New(opts)
			runSteps(t, c, tt.steps)
			if diff := cmp.Diff(tt.wantStats, c.Stats()); diff != "" {
				t.Errorf("Stats (-want +got):\n%s", diff)
			}
		})
	}
}

// otherProcess moves a span to a process the test's events are not from.
func otherProcess(s span.Span) span.Span {
	s.PID = pid + 1
	return s
}

func TestBusinessPrefixes(t *testing.T) {
	c := New(Options{Lateness: 10, BusinessPrefixes: []string{"netting."}})
	runSteps(t, c, []step{
		{spans: []span.Span{sp("net", "n", "", 7, 0, 100, "netting.run", "7", "settlement.id", "1")}},
		{events: []event.Event{ev(50, 7)}, flush: true, want: []joined{{50, 7, "net", JoinTID, attrs("netting.run", "7")}}},
	})
}

func TestCycleInSpanIDs(t *testing.T) {
	// Bad input: a is b's parent and b is a's. Adding them must terminate.
	c := New(testOptions())
	runSteps(t, c, []step{
		{spans: []span.Span{sp("a", "a", "b", 7, 0, 100, "order.id", "1")}},
		{spans: []span.Span{sp("b", "b", "a", 7, 10, 20, "payment.id", "2")}},
		{events: []event.Event{ev(50, 7)}, flush: true, want: []joined{{50, 7, "a", JoinTID, attrs("order.id", "1", "payment.id", "2")}}},
	})
}

func TestDefaults(t *testing.T) {
	c := New(Options{})
	if c.lateness != int64(2*time.Second) || c.maxSpanLag != int64(10*time.Second) ||
		c.maxEvents != DefaultMaxBufferedEvents || c.maxSpans != DefaultMaxSpans {
		t.Errorf("defaults not applied: %+v", c)
	}
}
