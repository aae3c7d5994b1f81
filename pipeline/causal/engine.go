package causal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// EngineOptions configure the streaming causal engine.
type EngineOptions struct {
	Logger  *slog.Logger
	Writer  Writer  // where each object's graph goes
	Mapping Mapping // zero value: DefaultMapping
	// Lateness is how far the newest event must be past an object's last span before its
	// chain is drawn: events of peers and holders may trail its own (default 1s).
	Lateness time.Duration
	// Retain is how much event history is kept, so the longest object the stream can
	// explain (longer ones are computed on demand from the event log; default 60s).
	Retain time.Duration
	// Idle: with no input for this long, every object whose spans have ended is drawn
	// (default 2s).
	Idle time.Duration
	// Queue is how many batches may wait for the engine before senders block (default 256).
	Queue int
	// WriteTimeout bounds one graph write (default 10s); a failed write is counted and
	// dropped: the chain is then computed on demand from the event log.
	WriteTimeout time.Duration
}

func (o EngineOptions) withDefaults() (EngineOptions, error) {
	if o.Writer == nil {
		return o, errors.New("causal engine needs a graph writer")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Mapping.Concepts == nil {
		o.Mapping = DefaultMapping()
	} else if err := o.Mapping.validate(); err != nil {
		return o, err
	}
	if o.Lateness <= 0 {
		o.Lateness = time.Second
	}
	if o.Retain <= 0 {
		o.Retain = time.Minute
	}
	if o.Retain <= o.Lateness {
		return o, fmt.Errorf("retain %v must be longer than lateness %v", o.Retain, o.Lateness)
	}
	if o.Idle <= 0 {
		o.Idle = 2 * time.Second
	}
	if o.Queue <= 0 {
		o.Queue = 256
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	return o, nil
}

// EngineStats are the engine's counters.
type EngineStats struct {
	Events, Spans  uint64
	Drawn          uint64 // objects whose chain was computed and written
	Redrawn        uint64 // of those, drawn again because events of their time came late
	WriteFailed    uint64 // graphs the writer refused (computed on demand later)
	TooLong        uint64 // objects longer than Retain: left to on-demand computation
	Nodes, Edges   uint64 // written
	PendingObjects int64
}

// Engine draws the causal chain of every business object its spans name, from the
// enriched events and spans it is fed, once no more of their events can arrive.
type Engine struct {
	opts  EngineOptions
	log   *slog.Logger
	in    chan input
	done  chan struct{}
	close sync.Once
	st    struct{ events, spans, drawn, redrawn, failed, tooLong, nodes, edges atomic.Uint64 }
	pend  atomic.Int64

	// Owned by Run.
	idx     *Index
	traces  map[string]*traceBuf
	pending map[string]*pendingObject
	// drawn keeps what was drawn while its events are retained: events of its time that
	// come after the drawing (a lagging topic, a reader that was idle) draw it again.
	drawn     map[string]*pendingObject
	drawnEnd  int64 // the latest end among drawn (not lowered by eviction)
	watermark int64 // newest event time seen
	evicted   int64
}

type input struct {
	events []event.Event
	spans  []span.Span
}

type traceBuf struct {
	spans   []span.Span
	lastEnd int64
}

type pendingObject struct {
	obj    Object
	traces map[string]bool
	endNs  int64 // the last span's end
	// dueNs: drawn once the newest event is Lateness past it (endNs, or for a redraw the
	// newest event when the late one came, so a burst of late events redraws once).
	dueNs int64
	// startNs..endNs is the time the drawing covered (set when drawn).
	startNs int64
	redraw  bool
}

// NewEngine validates options.
func NewEngine(opts EngineOptions) (*Engine, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Engine{opts: opts, log: opts.Logger.With("component", "causal"), in: make(chan input, opts.Queue),
		done: make(chan struct{}), idx: NewIndex(), traces: map[string]*traceBuf{}, pending: map[string]*pendingObject{},
		drawn: map[string]*pendingObject{}}, nil
}

// AddEvents hands enriched events to the engine (copied); it blocks while the engine is
// behind, so a slow graph store slows the pipeline rather than losing chains.
func (e *Engine) AddEvents(ctx context.Context, evs []event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	return e.send(ctx, input{events: append([]event.Event(nil), evs...)})
}

// AddSpans hands finished spans to the engine (copied).
func (e *Engine) AddSpans(ctx context.Context, spans []span.Span) error {
	if len(spans) == 0 {
		return nil
	}
	return e.send(ctx, input{spans: append([]span.Span(nil), spans...)})
}

func (e *Engine) send(ctx context.Context, in input) error {
	select {
	case <-e.done:
		return errors.New("causal engine closed")
	default:
	}
	select {
	case e.in <- in:
		return nil
	case <-e.done:
		return errors.New("causal engine closed")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close ends the input: Run draws every pending object and returns.
func (e *Engine) Close() { e.close.Do(func() { close(e.done) }) }

// Stats returns the counters.
func (e *Engine) Stats() EngineStats {
	return EngineStats{Events: e.st.events.Load(), Spans: e.st.spans.Load(), Drawn: e.st.drawn.Load(),
		WriteFailed: e.st.failed.Load(), TooLong: e.st.tooLong.Load(), Nodes: e.st.nodes.Load(),
		Edges: e.st.edges.Load(), PendingObjects: e.pend.Load(), Redrawn: e.st.redrawn.Load()}
}

// Run consumes until Close (or ctx ends), then draws what is pending with a fresh
// context bounded by WriteTimeout per graph.
func (e *Engine) Run(ctx context.Context) error {
	tick := time.NewTicker(e.opts.Idle / 4)
	defer tick.Stop()
	lastIn := time.Now()
	for {
		select {
		case in := <-e.in:
			e.take(ctx, in)
			lastIn = time.Now()
		case <-tick.C:
			if time.Since(lastIn) >= e.opts.Idle {
				e.drawDue(ctx, true)
			}
		case <-e.done:
			for {
				select {
				case in := <-e.in:
					e.take(ctx, in)
					continue
				default:
				}
				break
			}
			e.drawDue(context.WithoutCancel(ctx), true)
			return nil
		case <-ctx.Done():
			e.Close()
		}
	}
}

func (e *Engine) take(ctx context.Context, in input) {
	if len(in.spans) > 0 {
		e.st.spans.Add(uint64(len(in.spans)))
		e.addSpans(in.spans)
	}
	if len(in.events) > 0 {
		e.st.events.Add(uint64(len(in.events)))
		e.idx.Add(in.events)
		e.late(in.events)
		for i := range in.events {
			e.watermark = max(e.watermark, in.events[i].TsNs)
		}
		e.drawDue(ctx, false)
	}
	// Evicting moves what is kept: every half Retain, so each event moves about twice.
	if horizon := e.watermark - int64(e.opts.Retain); horizon > e.evicted+int64(e.opts.Retain/2) {
		e.evict(horizon)
	}
}

func (e *Engine) addSpans(spans []span.Span) {
	for i := range spans {
		s := &spans[i]
		tb := e.traces[s.TraceID]
		if tb == nil {
			tb = &traceBuf{}
			e.traces[s.TraceID] = tb
		}
		tb.spans = append(tb.spans, *s)
		tb.lastEnd = max(tb.lastEnd, s.EndNs)
		for _, o := range e.opts.Mapping.Objects(s) {
			key := o.NodeID()
			p := e.pending[key]
			if p == nil {
				p = &pendingObject{obj: o, traces: map[string]bool{}}
				e.pending[key] = p
				e.pend.Add(1)
			}
			p.traces[s.TraceID] = true
			p.endNs = max(p.endNs, s.EndNs)
			p.dueNs = max(p.dueNs, p.endNs)
		}
	}
}

// late puts back among the pending the drawn objects whose time evs overlap: their
// drawing missed these events. Events come nearly in time order, so only objects that
// ended within the batch's earliest time are looked at closely.
func (e *Engine) late(evs []event.Event) {
	if len(e.drawn) == 0 {
		return
	}
	lo := evs[0].TsNs
	for i := range evs {
		lo = min(lo, evs[i].TsNs)
	}
	if lo > e.drawnEnd {
		return // in time order, as nearly always: nothing drawn is touched
	}
	for key, p := range e.drawn {
		if p.endNs < lo {
			continue
		}
		for i := range evs {
			ev := &evs[i]
			if ev.TsNs <= p.endNs && ev.TsNs+int64(ev.DurNs) >= p.startNs {
				delete(e.drawn, key)
				if q := e.pending[key]; q != nil { // more spans came too: one drawing
					q.redraw = true
					break
				}
				p.redraw, p.dueNs = true, max(p.endNs, e.watermark)
				e.pending[key] = p
				e.pend.Add(1)
				break
			}
		}
	}
}

// drawDue draws the objects whose events are all in: the newest event is Lateness past
// their end (or, when the input is idle, any that has ended).
func (e *Engine) drawDue(ctx context.Context, idle bool) {
	for key, p := range e.pending {
		due := e.watermark >= p.dueNs+int64(e.opts.Lateness) || (idle && e.watermark >= p.endNs)
		if !due && !(idle && e.isClosed()) {
			continue
		}
		delete(e.pending, key)
		e.pend.Add(-1)
		e.draw(ctx, p)
	}
}

func (e *Engine) isClosed() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

func (e *Engine) draw(ctx context.Context, p *pendingObject) {
	var spans []span.Span
	for t := range p.traces {
		if tb := e.traces[t]; tb != nil {
			spans = append(spans, SubjectSpans(e.opts.Mapping, p.obj, tb.spans)...)
		}
	}
	if len(spans) == 0 {
		return
	}
	sub := Subject{Object: p.obj, Spans: spans}
	p.startNs = rootSpans(spans)[0].StartNs
	if p.startNs < e.evicted {
		e.st.tooLong.Add(1)
		e.log.Debug("object began before the retained events; left to on-demand computation", "object", p.obj.NodeID())
		return
	}
	g := BuildGraph(Analyze(e.idx, sub), e.opts.Mapping)
	wctx, cancel := context.WithTimeout(ctx, e.opts.WriteTimeout)
	err := e.opts.Writer.Write(wctx, g)
	cancel()
	if err != nil {
		e.st.failed.Add(1)
		e.log.Warn("writing a causal graph failed; it will be computed on demand", "object", p.obj.NodeID(), "err", err)
		return
	}
	e.st.drawn.Add(1)
	if p.redraw {
		e.st.redrawn.Add(1)
	}
	p.redraw = false
	e.drawn[p.obj.NodeID()] = p
	e.drawnEnd = max(e.drawnEnd, p.endNs)
	e.st.nodes.Add(uint64(len(g.Nodes)))
	e.st.edges.Add(uint64(len(g.Edges)))
}

func (e *Engine) evict(horizon int64) {
	e.idx.Evict(horizon)
	e.evicted = horizon
	for t, tb := range e.traces {
		if tb.lastEnd < horizon {
			delete(e.traces, t)
		}
	}
	for key, p := range e.drawn {
		if p.startNs < horizon {
			delete(e.drawn, key) // a late event could no longer be redrawn from what is kept
		}
	}
}

// SubjectSpans returns, from one trace's spans, those that carry obj and all their
// descendants.
func SubjectSpans(m Mapping, obj Object, spans []span.Span) []span.Span {
	c, ok := m.Concept(obj.Kind)
	if !ok {
		return nil
	}
	children := map[string][]int{}
	for i := range spans {
		children[spans[i].ParentID] = append(children[spans[i].ParentID], i)
	}
	in := make([]bool, len(spans))
	var stack []int
	for i := range spans {
		if o, ok := c.match(&spans[i]); ok && o.ID == obj.ID {
			stack = append(stack, i)
		}
	}
	var out []span.Span
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if in[i] {
			continue
		}
		in[i] = true
		out = append(out, spans[i])
		stack = append(stack, children[spans[i].SpanID]...)
	}
	return out
}
