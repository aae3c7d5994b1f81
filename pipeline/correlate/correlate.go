package correlate

import (
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// Defaults for zero Options fields.
const (
	DefaultLateness          = 2 * time.Second
	DefaultMaxSpanLag        = 10 * time.Second
	DefaultMaxBufferedEvents = 1 << 18 // about 100 MiB of events
	DefaultMaxSpans          = 1 << 18
)

// Options configure a Correlator.
type Options struct {
	Logger *slog.Logger
	// Lateness is how far behind the slower stream's newest time the watermark stays:
	// how late a span or an event may arrive and still be joined. It must cover the
	// skew between the streams, including the span exporters' batch delay. 0 means 2 s.
	Lateness time.Duration
	// MaxSpanLag bounds how long events wait for a span stream that has fallen silent
	// (no traced process, or a stalled exporter): the watermark never trails the newest
	// event by more than this. 0 means 10 s; it is raised to Lateness if below it.
	MaxSpanLag time.Duration
	// MaxBufferedEvents caps the events waiting for the watermark; past it the oldest
	// are emitted early and counted in Stats.ForcedFlushes. 0 means 1<<18.
	MaxBufferedEvents int
	// MaxSpans caps the retained spans; past it those that ended first are dropped and
	// counted in Stats.SpansForcedOut. 0 means 1<<18.
	MaxSpans int
	// BusinessPrefixes selects the span attributes copied onto events; nil means
	// span.DefaultBusinessPrefixes, and an empty non-nil slice keeps none.
	BusinessPrefixes []string
}

// Stats are the correlator's counters. Every event emitted is counted once under a
// Joined* (how) or an Unmatched* (why not) counter.
type Stats struct {
	EventsIn         uint64
	JoinedTID        uint64 // the span's thread.id is the event's thread
	JoinedThreadName uint64 // the span's thread.name is the event's thread's name
	JoinedOnCPU      uint64 // the event's thread was on a CPU when the span started or ended
	JoinedPID        uint64 // on the process alone (the span's process.pid)
	JoinedPeerPID    uint64 // on the process alone, found from the span's OTLP connection
	Unmatched        uint64 // emitted with Join "": the sum of the four below
	UnmatchedNoHost  uint64 // no span came from the event's node
	UnmatchedNoPID   uint64 // no span names the event's process
	UnmatchedThread  uint64 // its process's spans covered the time, on other threads
	UnmatchedNoSpan  uint64 // no span of its process covered the time
	// LateEvents arrived behind the watermark: they were joined against the spans still
	// held and emitted at once.
	LateEvents uint64
	// ForcedFlushes counts events emitted before the watermark passed them because
	// MaxBufferedEvents was reached: spans arriving after may have been missed.
	ForcedFlushes  uint64
	SpansIn        uint64
	DuplicateSpans uint64 // same trace and span ID as a retained span; the first is kept
	InvalidSpans   uint64 // no ID, or ending before they start
	SpansNoHost    uint64 // no host.name, and not sent to this node's receiver: cannot join
	SpansNoPID     uint64 // no process.pid, and the sender not found: cannot join
	// SpansLate arrived after the watermark had passed their start: events they cover
	// were already emitted, unjoined.
	SpansLate uint64
	// SpansNoEvents is how many retained or expired spans no event has joined (yet).
	SpansNoEvents uint64
	// SpansByProcess name a thread (thread.id, thread.name) that none of their process's
	// recorded threads matched, and were joined on the process alone.
	SpansByProcess uint64
	SpansExpired   uint64 // dropped once the watermark passed their end plus lateness
	SpansForcedOut uint64 // dropped early because MaxSpans was reached

	BufferedEvents int
	RetainedSpans  int
	WatermarkNs    int64
}

// Correlator joins kernel events to spans. It is not safe for concurrent use: the engine
// drives it from one goroutine.
//
// Joined events share their Attrs map with every event joined to the same span: treat
// it as read-only, and copy it before changing it.
type Correlator struct {
	log        *slog.Logger
	lateness   int64
	maxSpanLag int64
	maxEvents  int
	maxSpans   int

	idx  *index
	buf  buffer
	late []event.Event

	evMax, spMax int64 // newest event time, newest span end
	wm           int64 // events at or before wm have been emitted
	stats        Stats
	linear       bool // tests and the benchmark baseline: scan spans instead of searching
}

// withDefaults fills in the zero options: the one place a correlator's defaults live
// (Lateness reports the resolved lateness to those that wait on it).
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Lateness <= 0 {
		o.Lateness = DefaultLateness
	}
	if o.MaxSpanLag <= 0 {
		o.MaxSpanLag = DefaultMaxSpanLag
	}
	o.MaxSpanLag = max(o.MaxSpanLag, o.Lateness)
	if o.MaxBufferedEvents <= 0 {
		o.MaxBufferedEvents = DefaultMaxBufferedEvents
	}
	if o.MaxSpans <= 0 {
		o.MaxSpans = DefaultMaxSpans
	}
	if o.BusinessPrefixes == nil {
		o.BusinessPrefixes = slices.Clone(span.DefaultBusinessPrefixes)
	}
	return o
}

// New returns a Correlator, filling in defaults for zero options.
func New(opts Options) *Correlator {
	opts = opts.withDefaults()
	log := opts.Logger
	return &Correlator{
		log:        log.With("component", "correlator"),
		lateness:   int64(opts.Lateness),
		maxSpanLag: int64(opts.MaxSpanLag),
		maxEvents:  opts.MaxBufferedEvents,
		maxSpans:   opts.MaxSpans,
		idx:        newIndex(span.Business{Prefixes: opts.BusinessPrefixes}),
		evMax:      math.MinInt64,
		spMax:      math.MinInt64,
		wm:         math.MinInt64,
	}
}

// AddSpans retains spans for joining. The correlator keeps the spans' Attrs maps: the
// caller must not change them afterwards. Events the new spans let through the
// watermark are emitted by the next AddEvents (AddEvents(nil, emit) to drain now).
func (c *Correlator) AddSpans(spans []span.Span) {
	for i := range spans {
		s := &spans[i]
		c.stats.SpansIn++
		if s.TraceID == "" || s.SpanID == "" || s.EndNs < s.StartNs {
			c.stats.InvalidSpans++
			continue
		}
		if !c.idx.add(*s) {
			c.stats.DuplicateSpans++
			continue
		}
		c.spMax = max(c.spMax, s.EndNs)
		switch {
		case s.Host == "":
			c.stats.SpansNoHost++
		case s.PID == 0:
			c.stats.SpansNoPID++
		default:
			c.stats.SpansNoEvents++
			if c.wm != math.MinInt64 && s.StartNs <= c.wm {
				c.stats.SpansLate++
			}
		}
	}
	// Only the cap is enforced here: expiry waits until the events that might still need
	// a span have been emitted.
	if len(c.idx.byEnd) > c.maxSpans {
		_, forced := c.idx.evict(math.MinInt64, c.maxSpans)
		c.stats.SpansForcedOut += uint64(forced)
	}
}

// AddEvents takes a batch of kernel events (copied; the caller keeps events) and emits,
// joined, every buffered event the watermark has passed, in time order, plus late events
// and any flushed early by the buffer cap. emit must not keep its slice after it returns.
func (c *Correlator) AddEvents(events []event.Event, emit func([]event.Event)) {
	c.stats.EventsIn += uint64(len(events))
	for i := range events {
		c.idx.see(&events[i])
	}
	// Late events skip the buffer: merging them would move everything buffered.
	if len(events) > 0 && c.wm != math.MinInt64 {
		c.late = c.late[:0]
		for i := range events {
			if events[i].TsNs <= c.wm {
				c.late = append(c.late, events[i])
			}
		}
		if n := len(c.late); n > 0 {
			c.stats.LateEvents += uint64(n)
			c.join(c.late)
			emit(c.late)
			clear(c.late)
		}
	}
	for i := range events {
		if ts := events[i].TsNs; ts > c.wm || c.wm == math.MinInt64 {
			c.evMax = max(c.evMax, ts)
		}
	}
	c.buf.add(events, c.wm)

	c.wm = max(c.wm, c.watermark())
	if n := c.buf.readyUntil(c.wm); n > 0 {
		c.emit(n, emit)
	}
	if over := c.buf.len() - c.maxEvents; over > 0 {
		c.stats.ForcedFlushes += uint64(over)
		c.emit(over, emit)
	}
	// Spans are kept for one more lateness past the watermark, for late events.
	expired, forced := c.idx.evict(satSub(c.wm, c.lateness), c.maxSpans)
	c.stats.SpansExpired += uint64(expired)
	c.stats.SpansForcedOut += uint64(forced)
	if c.wm != math.MinInt64 {
		c.idx.pruneThreads(c.wm)
	}
}

// Flush emits every buffered event, joined with the spans held now: at the end of input
// or at shutdown. The watermark is not moved, so spans stay for events still to come.
func (c *Correlator) Flush(emit func([]event.Event)) {
	if n := c.buf.len(); n > 0 {
		c.emit(n, emit)
	}
}

// Watermark is the time up to which every event received has been emitted: input
// carrying nothing later can be committed.
func (c *Correlator) Watermark() int64 { return c.wm }

// Stats returns the counters.
func (c *Correlator) Stats() Stats {
	s := c.stats
	s.BufferedEvents = c.buf.len()
	s.RetainedSpans = len(c.idx.byEnd)
	s.WatermarkNs = c.wm
	return s
}

// watermark is min over the streams of the newest time seen, less the lateness, but
// never more than MaxSpanLag behind the newest event.
func (c *Correlator) watermark() int64 {
	if c.evMax == math.MinInt64 {
		return math.MinInt64
	}
	return max(satSub(min(c.evMax, c.spMax), c.lateness), satSub(c.evMax, c.maxSpanLag))
}

// emit joins and hands out the first n buffered events, straight from the buffer's
// storage: emit's contract already forbids keeping the slice.
func (c *Correlator) emit(n int, emit func([]event.Event)) {
	c.buf.drain(n, func(evs []event.Event) {
		c.join(evs)
		emit(evs)
	})
}

func (c *Correlator) join(evs []event.Event) {
	for i := range evs {
		ev := &evs[i]
		e, how, why := c.idx.lookup(ev, c.evMax, c.linear)
		if e == nil {
			c.stats.Unmatched++
			switch why {
			case missHost:
				c.stats.UnmatchedNoHost++
			case missPID:
				c.stats.UnmatchedNoPID++
			case missThread:
				c.stats.UnmatchedThread++
			default:
				c.stats.UnmatchedNoSpan++
			}
			ev.TraceID, ev.SpanID, ev.Service, ev.SpanName, ev.Join, ev.Attrs = "", "", "", "", "", nil
			continue
		}
		c.count(e, how)
		ev.TraceID = e.s.TraceID
		ev.SpanID = e.s.SpanID
		ev.Service = e.s.Service
		ev.SpanName = e.s.Name
		ev.Join = how
		ev.Attrs = e.merged
	}
}

func (c *Correlator) count(e *entry, how string) {
	switch how {
	case JoinTID:
		c.stats.JoinedTID++
	case JoinThreadName:
		c.stats.JoinedThreadName++
	case JoinOnCPU:
		c.stats.JoinedOnCPU++
	case JoinPeerPID:
		c.stats.JoinedPeerPID++
	default:
		c.stats.JoinedPID++
	}
	// A span whose descendants have events is not one without: mark the chain up.
	for a := e; a != nil && !a.joined; a = c.idx.byID[a.parentKey] {
		a.joined = true
		if a.s.Host != "" && a.s.PID != 0 {
			c.stats.SpansNoEvents--
		}
		if a.parentKey.span == "" {
			break
		}
	}
	if (how == JoinPID || how == JoinPeerPID) && !e.byProcess && (e.s.TID != 0 || e.comm != "") {
		e.byProcess = true
		c.stats.SpansByProcess++
	}
}

// satSub is a - b without wrapping below MinInt64 (b >= 0).
func satSub(a, b int64) int64 {
	if a < math.MinInt64+b {
		return math.MinInt64
	}
	return a - b
}

// Lateness is the resolved Options.Lateness (the default when it was zero), for callers
// that must agree with the correlator on how late a span may still join.
func (c *Correlator) Lateness() time.Duration { return time.Duration(c.lateness) }
