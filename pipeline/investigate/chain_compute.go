package investigate

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/span"
)

// On-demand chains: the subject's spans and every kernel event around them are read from
// the event log and the causal rules run on them, exactly as the streaming engine would.

// ChainLog is the part of the event log an on-demand chain reads (eventlog.Log is one).
type ChainLog interface {
	Events(ctx context.Context, q eventlog.Query) ([]event.Event, error)
	Spans(ctx context.Context, q eventlog.SpanQuery) ([]span.Span, error)
}

const (
	// Events from this long before a subject starts are read too: all the analysis looks at.
	onDemandBefore = causal.LookBehind
	onDemandAfter  = causal.LookAhead
	// A subject longer than this is not computed on demand (it would read too much).
	onDemandMax = 10 * time.Minute
	// At most this many events are read for one chain.
	onDemandEvents = 5_000_000
)

func (c Chains) compute(ctx context.Context, obj causal.Object) (causal.Result, error) {
	m := c.mapping()
	concept, _ := m.Concept(obj.Kind)
	obj.Label = concept.Label
	name := RefName(Ref{Kind: obj.Kind, ID: obj.ID})
	keyed, err := c.Log.Spans(ctx, eventlog.SpanQuery{AttrKey: concept.IDAttr, AttrValue: obj.ID})
	if err != nil {
		return causal.Result{}, fmt.Errorf("chain of %s: reading its spans: %w", name, err)
	}
	traces := map[string]bool{}
	for i := range keyed {
		if slices.Contains(m.Objects(&keyed[i]), obj) {
			traces[keyed[i].TraceID] = true
		}
	}
	var spans []span.Span
	for _, t := range slices.Sorted(maps.Keys(traces)) {
		all, err := c.Log.Spans(ctx, eventlog.SpanQuery{TraceID: t})
		if err != nil {
			return causal.Result{}, fmt.Errorf("chain of %s: reading trace %s: %w", name, t, err)
		}
		spans = append(spans, causal.SubjectSpans(m, obj, all)...)
	}
	if len(spans) == 0 {
		return causal.Result{}, fmt.Errorf("%s: no spans in the event log: %w", name, ErrNotFound)
	}
	from, to := spans[0].StartNs, spans[0].EndNs
	for _, s := range spans {
		from, to = min(from, s.StartNs), max(to, s.EndNs)
	}
	if d := time.Duration(to - from); d > onDemandMax {
		return causal.Result{}, fmt.Errorf("%s lasted %v: too long to compute on demand (at most %v); the causal engine draws such chains as they happen: %w",
			name, d.Round(time.Second), onDemandMax, ErrInvalid)
	}
	// Every process's events in the window: the peers, holders and CPU neighbours the
	// rules follow are not known before they are followed.
	evs, err := c.Log.Events(ctx, eventlog.Query{From: from - int64(onDemandBefore), To: to + int64(onDemandAfter), Limit: onDemandEvents})
	if err != nil {
		return causal.Result{}, fmt.Errorf("chain of %s: reading kernel events: %w", name, err)
	}
	if len(evs) >= onDemandEvents {
		c.logger().Warn("more kernel events around the subject than an on-demand chain reads; the chain is partial",
			"subject", name, "read", len(evs))
	}
	idx := causal.NewIndex()
	idx.Add(evs)
	return causal.Analyze(idx, causal.Subject{Object: obj, Spans: spans}), nil
}

// objectOfTrace is the business object a trace is about: the first one found walking the
// trace down from its root.
func (c Chains) objectOfTrace(ctx context.Context, traceID string) (causal.Object, error) {
	if c.Log == nil {
		return causal.Object{}, fmt.Errorf("chain of trace %s: a trace is resolved through the event log, and none is open: %w", traceID, ErrInvalid)
	}
	spans, err := c.Log.Spans(ctx, eventlog.SpanQuery{TraceID: traceID})
	if err != nil {
		return causal.Object{}, fmt.Errorf("chain of trace %s: %w", traceID, err)
	}
	if len(spans) == 0 {
		return causal.Object{}, fmt.Errorf("trace %s: %w", traceID, ErrNotFound)
	}
	depth := map[string]int{}
	ids := map[string]*span.Span{}
	for i := range spans {
		ids[spans[i].SpanID] = &spans[i]
	}
	var depthOf func(s *span.Span, n int) int
	depthOf = func(s *span.Span, n int) int {
		p := ids[s.ParentID]
		if p == nil || n > len(spans) {
			return 0
		}
		return 1 + depthOf(p, n+1)
	}
	for i := range spans {
		depth[spans[i].SpanID] = depthOf(&spans[i], 0)
	}
	slices.SortStableFunc(spans, func(a, b span.Span) int {
		return cmp.Or(cmp.Compare(depth[a.SpanID], depth[b.SpanID]), cmp.Compare(a.StartNs, b.StartNs))
	})
	m := c.mapping()
	for i := range spans {
		if objs := m.Objects(&spans[i]); len(objs) > 0 {
			return objs[0], nil
		}
	}
	return causal.Object{}, fmt.Errorf("trace %s: none of its %d spans is a business object the mapping knows (%v): %w",
		traceID, len(spans), m.Kinds(), ErrNotFound)
}
