package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/correlate"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/otlp"
	"github.com/kprobe/kprobe/pipeline/span"
)

// Store is where joined events are written; the event log implements it.
type Store interface {
	Insert(ctx context.Context, events []event.Event) error
}

// SpanStore is implemented by stores that also keep spans (the event log does), so that
// investigations can start from a settlement's own span.
type SpanStore interface {
	InsertSpans(ctx context.Context, spans []span.Span) error
}

// Options configure an Engine.
type Options struct {
	Logger     *slog.Logger
	Source     bus.Source    // kernel topics and, optionally, SpansTopic
	Store      Store         // the event log
	Out        bus.Publisher // kernel.enriched and the dead-letter topic; nil to skip
	SpansTopic string        // topic carrying OTLP protobuf spans ("" if none)
	// TopicPrefix is put before kernel.enriched and kernel.deadletter (as the recorders
	// put it before the kernel topics).
	TopicPrefix string
	Correlate   correlate.Options
	FlushEvery  time.Duration // how often joined events are written (default 200ms)
	MaxBatch    int           // write early when this many events are waiting (default 50k)
	Idle        time.Duration // with no input for this long, flush the correlator (default 1s)
	// DrainTimeout bounds the final write and commit at shutdown (default 30s), so a
	// store that is down cannot hold shutdown forever.
	DrainTimeout time.Duration
}

// withDefaults checks opts and fills in the zero values.
func (o Options) withDefaults() (Options, error) {
	if o.Source == nil || o.Store == nil {
		return o, errors.New("engine needs a source and a store")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = 200 * time.Millisecond
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 50_000
	}
	if o.Idle <= 0 {
		o.Idle = time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	o.Correlate.Logger = o.Logger
	if o.Correlate.BusinessPrefixes == nil {
		// Resolved here, once: the correlator and the span topic's decoder keep the same.
		o.Correlate.BusinessPrefixes = slices.Clone(span.DefaultBusinessPrefixes)
	}
	return o, nil
}

// Engine correlates and stores. Run it once.
type Engine struct {
	opts   Options
	log    *slog.Logger
	corr   *correlate.Correlator
	spans  chan []span.Span
	pend   *pending
	commit *committer
	// seen is the newest offset handled per partition: after Kafka comes back (or the group
	// rebalances) the consumer starts again from the last committed offset, and what this
	// engine already handled and still holds must not be joined and written twice.
	seen map[partKey]int64
	// spanConv decodes the span topic keeping the business attributes the correlator keeps.
	spanConv otlp.Converter
	// lateness is the correlator's resolved Lateness: a span message is safe to commit
	// only once no event can join it any more.
	lateness int64
	out      []event.Event
	piece    int // rows per insert: MaxBatch, fewer while the disk is full (write.go)
	spanOut  []span.Span
	stats    stats
	// corrStats is the correlator's counters as Run last published them: the correlator
	// belongs to Run's goroutine, and Stats may be called from any.
	corrStats atomic.Pointer[correlate.Stats]
	lastIn    time.Time
	flushed   bool
	draining  chan struct{} // closed by Drain
	drainOnce sync.Once
	storeFull atomic.Bool // the last store write failed with ErrStoreFull
	store     storeState  // as the writes found it; Run's goroutine only (write.go)
}

type stats struct {
	messages, events, spans, written, deadLettered, commits, insertRetries, enrichedDropped atomic.Uint64
	redelivered, commitRetries                                                              atomic.Uint64
}

// Stats are the engine's counters. Redelivered counts messages the source delivered again
// (after an outage or a rebalance) that were already handled and so were skipped;
// CommitRetries counts failed commit attempts (the source was away).
type Stats struct {
	Messages, Events, Spans, Written, DeadLettered, Commits, InsertRetries, EnrichedDropped uint64
	Redelivered, CommitRetries                                                              uint64
	Correlator                                                                              correlate.Stats
}

// StoreFull reports whether the store's disk was full at the last write attempt.
func (e *Engine) StoreFull() bool { return e.storeFull.Load() }

// New validates options and returns an engine.
func New(opts Options) (*Engine, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		opts:  opts,
		log:   opts.Logger.With("component", "engine"),
		corr:  correlate.New(opts.Correlate),
		spans: make(chan []span.Span, 64),
		pend:  newPending(),
		seen:  map[partKey]int64{},

		draining: make(chan struct{}),
		piece:    opts.MaxBatch,
	}
	e.lateness = int64(e.corr.Lateness())
	e.spanConv = otlp.Converter{Business: e.Business()}
	e.commit = newCommitter(opts.Source, e.log, &e.stats.commits, &e.stats.commitRetries)
	return e, nil
}

// Business is the span attributes the engine keeps as business attributes (resolved from
// Options.Correlate.BusinessPrefixes): a span receiver feeding AddSpans keeps the same.
func (e *Engine) Business() span.Business {
	return span.Business{Prefixes: e.opts.Correlate.BusinessPrefixes}
}

// AddSpans hands spans received directly (OTLP gRPC/HTTP) to the engine; safe for
// concurrent use. It blocks when the engine is behind, which back-pressures OTLP senders.
func (e *Engine) AddSpans(ctx context.Context, spans []span.Span) error {
	select {
	case e.spans <- spans:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns a snapshot of the counters, safe to call while Run runs. The correlator's
// are those Run published after the input it last handled; exact once Run returns.
func (e *Engine) Stats() Stats {
	var cs correlate.Stats
	if p := e.corrStats.Load(); p != nil {
		cs = *p
	}
	return Stats{
		Messages: e.stats.messages.Load(), Events: e.stats.events.Load(), Spans: e.stats.spans.Load(),
		Written: e.stats.written.Load(), DeadLettered: e.stats.deadLettered.Load(), Commits: e.stats.commits.Load(),
		InsertRetries: e.stats.insertRetries.Load(), EnrichedDropped: e.stats.enrichedDropped.Load(),
		Redelivered: e.stats.redelivered.Load(), CommitRetries: e.stats.commitRetries.Load(),
		Correlator: cs,
	}
}

// publishStats makes the correlator's counters visible to Stats; called from Run only.
func (e *Engine) publishStats() {
	s := e.corr.Stats()
	e.corrStats.Store(&s)
}

// Run consumes until ctx ends or the source closes, then writes out what it holds and
// commits it. A source that goes away for a while (Kafka down) only delays commits; a
// store that fails is retried until it takes the rows, or until DrainTimeout after the
// stop (ctx ended, or Drain), when Run gives up and says how much was not written.
func (e *Engine) Run(ctx context.Context) error {
	wctx, stopWrites := e.writeContext(ctx)
	defer stopWrites()
	commitCtx, stopCommits := context.WithCancel(ctx)
	commitsDone := make(chan struct{})
	go func() {
		defer close(commitsDone)
		e.commit.run(commitCtx)
	}()
	defer func() { stopCommits(); <-commitsDone }()

	msgs := make(chan bus.Message, 1024)
	fetchErr := make(chan error, 1)
	fetchCtx, cancelFetch := context.WithCancel(ctx)
	defer cancelFetch()
	go func() {
		defer close(msgs)
		for {
			m, err := e.opts.Source.Fetch(fetchCtx)
			if err != nil {
				fetchErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-fetchCtx.Done():
				fetchErr <- fetchCtx.Err()
				return
			}
		}
	}()

	tick := time.NewTicker(e.opts.FlushEvery)
	defer tick.Stop()
	defer e.publishStats()
	e.lastIn = time.Now()
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				err := <-fetchErr
				// Spans handed over before the input closed still join what is buffered.
				e.drainSpans()
				// Drain: write everything still buffered and commit it, within DrainTimeout
				// of the stop.
				e.corr.Flush(e.emit)
				stopCommits()
				<-commitsDone
				if werr := e.write(wctx, true); werr != nil {
					return werr
				}
				if cerr := e.commit.flush(wctx); cerr != nil && !errors.Is(cerr, bus.ErrClosed) {
					return fmt.Errorf("%w: %d partitions are read again from their last commit at the next start (their events are stored; writing them again is harmless)",
						cerr, e.commit.waiting())
				}
				if errors.Is(err, bus.ErrClosed) || errors.Is(err, context.Canceled) {
					return nil
				}
				return fmt.Errorf("consuming: %w", err)
			}
			e.handle(m)
		case s := <-e.spans:
			e.addSpans(s)
		case <-tick.C:
			if time.Since(e.lastIn) > e.opts.Idle && !e.flushed {
				e.corr.Flush(e.emit)
				e.flushed = true
			}
			if err := e.write(wctx, e.flushed); err != nil {
				return err // the drain timeout passed with the store still failing
			}
		}
		e.publishStats()
		if len(e.out) >= e.opts.MaxBatch {
			if err := e.write(wctx, false); err != nil {
				return err
			}
		}
	}
}

func (e *Engine) addSpans(s []span.Span) {
	e.stats.spans.Add(uint64(len(s)))
	e.corr.AddSpans(s)
	e.keepSpans(s)
	e.lastIn = time.Now()
}

// drainSpans takes the spans already handed to AddSpans without waiting for more.
func (e *Engine) drainSpans() {
	for {
		select {
		case s := <-e.spans:
			e.addSpans(s)
		default:
			return
		}
	}
}

func (e *Engine) handle(m bus.Message) {
	k := partKey{m.Topic, m.Partition}
	if last, ok := e.seen[k]; ok && m.Offset <= last {
		e.stats.redelivered.Add(1)
		return
	}
	e.seen[k] = m.Offset
	e.stats.messages.Add(1)
	e.lastIn = time.Now()
	e.flushed = false
	if e.opts.SpansTopic != "" && m.Topic == e.opts.SpansTopic {
		spans, err := e.spanConv.DecodeKafka(m.Value)
		if err != nil {
			e.deadLetter(m, err)
			e.pend.add(m, minInt64)
			return
		}
		var until int64 = minInt64
		for i := range spans {
			until = max(until, spans[i].EndNs+e.lateness)
		}
		e.stats.spans.Add(uint64(len(spans)))
		e.corr.AddSpans(spans)
		e.keepSpans(spans)
		e.pend.add(m, until)
		return
	}
	evs, err := event.UnmarshalBatch(m.Value)
	if err != nil {
		e.deadLetter(m, err)
		e.pend.add(m, minInt64)
		return
	}
	var until int64 = minInt64
	for i := range evs {
		until = max(until, evs[i].TsNs)
	}
	e.stats.events.Add(uint64(len(evs)))
	e.corr.AddEvents(evs, e.emit)
	e.pend.add(m, until)
}

const minInt64 = -1 << 63

func (e *Engine) emit(evs []event.Event) { e.out = append(e.out, evs...) }

func (e *Engine) keepSpans(s []span.Span) {
	if _, ok := e.opts.Store.(SpanStore); ok {
		e.spanOut = append(e.spanOut, s...)
	}
}

func (e *Engine) deadLetter(m bus.Message, err error) {
	e.stats.deadLettered.Add(1)
	e.log.Warn("dead-lettering malformed message", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
	if e.opts.Out != nil {
		e.opts.Out.Publish(bus.Message{Topic: e.opts.TopicPrefix + event.TopicDeadLetter, Key: []byte(m.Topic + ": " + err.Error()), Value: m.Value})
	}
}
