package investigate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/eventlog"
)

// EventReader is what the use cases read from the event log (eventlog.Log, embedded or
// on a ClickHouse server).
type EventReader interface {
	Events(ctx context.Context, q eventlog.Query) ([]event.Event, error)
	EventTotalsByValue(ctx context.Context, key string, values []string) ([]eventlog.ValueTotal, error)
	SpanGroups(ctx context.Context, q eventlog.SpanGroupQuery) ([]eventlog.SpanGroup, error)
	SyscallLog(ctx context.Context, node string, pid uint32, from, to int64) ([]event.Event, error)
}

// Options configures Local.
type Options struct {
	Logger *slog.Logger
	// Events is the event log (required). Local owns it from then on: Close closes it
	// when it is an io.Closer.
	Events EventReader
	// Kinds adds business kinds to DefaultKinds, or remaps one of them.
	Kinds []Kind
	// Graph is the causal graph store the engine draws chains into (Local owns it too: Close
	// closes it when it is an io.Closer); nil computes every
	// chain from the event log on demand (which needs Events to read spans: eventlog.Log
	// does).
	Graph causal.Reader
	// Mapping is the business mapping the chains use (zero: causal.DefaultMapping).
	Mapping causal.Mapping
	// DefaultLimit is how many subjects Subjects returns when the query gives no
	// limit; default 20.
	DefaultLimit int
}

func (o Options) withDefaults() (Options, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Events == nil {
		return o, errors.New("investigate: no event log given")
	}
	if o.DefaultLimit <= 0 {
		o.DefaultLimit = 20
	}
	return o, nil
}

// Local answers the questions from the stores themselves (the embedded ones under
// --data, or the cluster's), in this process.
type Local struct {
	opts  Options
	log   *slog.Logger
	kinds kinds
}

var _ Service = (*Local)(nil)

// NewLocal returns the use cases over the given stores.
func NewLocal(opts Options) (*Local, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ks, err := withKinds(opts.Kinds)
	if err != nil {
		return nil, err
	}
	return &Local{opts: opts, log: opts.Logger.With("component", "investigate"), kinds: ks}, nil
}

// Subjects returns the business objects of one kind as their spans show them, longest
// first, each with the count of kernel events joined to it.
func (l *Local) Subjects(ctx context.Context, q SubjectQuery) ([]Subject, error) {
	if q.Kind == "" {
		q.Kind = KindSettlement
	}
	if q.Limit <= 0 {
		q.Limit = l.opts.DefaultLimit
	}
	if q.To != 0 && q.To < q.From {
		return nil, fmt.Errorf("%w: window ends (%d) before it starts (%d)", ErrInvalid, q.To, q.From)
	}
	attr, err := l.kinds.attr(q.Kind)
	if err != nil {
		return nil, err
	}
	groups, err := l.opts.Events.SpanGroups(ctx, eventlog.SpanGroupQuery{Key: attr, From: q.From, To: q.To, FailedOnly: q.FailedOnly, Limit: q.Limit})
	if err != nil {
		return nil, err
	}
	if q.Uncounted {
		out := make([]Subject, len(groups))
		for i, g := range groups {
			out[i] = subjectOf(q.Kind, g)
			out[i].Events = EventsUncounted
		}
		return out, nil
	}
	return l.subjects(ctx, q.Kind, attr, groups)
}

// subjects are span groups as Subjects, with the events joined to each counted.
func (l *Local) subjects(ctx context.Context, kind, attr string, groups []eventlog.SpanGroup) ([]Subject, error) {
	// The events of every listed subject are counted in one query (a scan of the log),
	// not one query per subject.
	values := make([]string, len(groups))
	for i, g := range groups {
		values[i] = g.Value
	}
	totals, err := l.opts.Events.EventTotalsByValue(ctx, attr, values)
	if err != nil {
		return nil, err
	}
	byValue := make(map[string]eventlog.ValueTotal, len(totals))
	for _, t := range totals {
		byValue[t.Value] = t
	}
	out := make([]Subject, 0, len(groups))
	for _, g := range groups {
		s := subjectOf(kind, g)
		if t, ok := byValue[g.Value]; ok {
			s.Events, s.Comm = int(t.Events), t.Comm
		}
		out = append(out, s)
	}
	return out, nil
}

// Subject returns one business object, or an error wrapping ErrNotFound.
func (l *Local) Subject(ctx context.Context, ref Ref) (Subject, error) {
	if ref.Kind == "" || ref.ID == "" {
		return Subject{}, fmt.Errorf("%w: a subject is named by a kind and an ID", ErrInvalid)
	}
	attr, err := l.kinds.attr(ref.Kind)
	if err != nil {
		return Subject{}, err
	}
	groups, err := l.opts.Events.SpanGroups(ctx, eventlog.SpanGroupQuery{Key: attr, Value: ref.ID, Limit: 1})
	if err != nil {
		return Subject{}, err
	}
	if len(groups) == 0 {
		return Subject{}, fmt.Errorf("%s %s: %w", ref.Kind, ref.ID, ErrNotFound)
	}
	subs, err := l.subjects(ctx, ref.Kind, attr, groups[:1])
	if err != nil {
		return Subject{}, err
	}
	return subs[0], nil
}

// subjectOf is a span group as a Subject, its events not yet counted.
func subjectOf(kind string, g eventlog.SpanGroup) Subject {
	s := Subject{
		Kind: kind, ID: g.Value, StartNs: g.StartNs, DurationNs: g.EndNs - g.StartNs,
		TraceID: g.TraceID, Service: g.Service, Node: g.Host, PID: g.PID, Spans: int(g.Spans),
	}
	switch {
	case g.Errors > 0:
		s.Status = "error"
	case g.OKs > 0:
		s.Status = "ok"
	}
	return s
}

// Chain returns the causal chain of a subject: from the graph store when it holds it,
// else computed from the event log (chain.go).
func (l *Local) Chain(ctx context.Context, ref Ref) (Chain, error) {
	c := Chains{Graph: l.opts.Graph, Mapping: l.opts.Mapping, Logger: l.log}
	if cl, ok := l.opts.Events.(ChainLog); ok {
		c.Log = cl
	}
	return c.Chain(ctx, ref)
}

// Events returns the kernel events matching q, in time order.
func (l *Local) Events(ctx context.Context, q EventQuery) ([]event.Event, error) {
	eq, err := l.eventQuery(q)
	if err != nil {
		return nil, err
	}
	return l.opts.Events.Events(ctx, eq)
}

// eventQuery is q as the event log takes it.
func (l *Local) eventQuery(q EventQuery) (eventlog.Query, error) {
	if q.To != 0 && q.To < q.From {
		return eventlog.Query{}, fmt.Errorf("%w: window ends (%d) before it starts (%d)", ErrInvalid, q.To, q.From)
	}
	if q.Limit < 0 {
		return eventlog.Query{}, fmt.Errorf("%w: negative limit %d", ErrInvalid, q.Limit)
	}
	eq := eventlog.Query{
		Node: q.Node, PID: q.PID, TID: q.TID, SpanID: q.SpanID, From: q.From, To: q.To,
		TraceID: q.Ref.TraceID, Types: q.Types, IDs: q.IDs, Limit: q.Limit,
	}
	switch {
	case q.Ref.Kind != "" && q.Ref.ID != "":
		attr, err := l.kinds.attr(q.Ref.Kind)
		if err != nil {
			return eventlog.Query{}, err
		}
		eq.AttrKey, eq.AttrValue = attr, q.Ref.ID
	case q.Ref.Kind != "" || q.Ref.ID != "":
		return eventlog.Query{}, fmt.Errorf("%w: a subject is named by a kind and an ID (got kind %q, ID %q)", ErrInvalid, q.Ref.Kind, q.Ref.ID)
	}
	return eq, nil
}

// SyscallLog returns one process's recorded reads and writes with their payloads, in
// order: what a replay serves.
func (l *Local) SyscallLog(ctx context.Context, q SyscallLogQuery) ([]event.Event, error) {
	if q.PID == 0 {
		return nil, fmt.Errorf("%w: a syscall log is one process's: give its pid", ErrInvalid)
	}
	if q.To != 0 && q.To < q.From {
		return nil, fmt.Errorf("%w: window ends (%d) before it starts (%d)", ErrInvalid, q.To, q.From)
	}
	return l.opts.Events.SyscallLog(ctx, q.Node, q.PID, q.From, q.To)
}

// Close closes the stores Local was given.
func (l *Local) Close() error {
	var errs []error
	for _, s := range []any{l.opts.Events, l.opts.Graph} {
		if c, ok := s.(io.Closer); ok {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}
