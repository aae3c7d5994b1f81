package investigate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/kprobe/kprobe/pipeline/causal"
)

// Chains answers Chain: from the causal graph when it holds the subject (the engine drew
// it as it happened), otherwise computed on demand from the event log with the same rules
// (a store recorded before the causal engine ran, a graph write that failed, a subject the
// stream could not hold).
type Chains struct {
	Graph   causal.Reader  // nil: compute every chain on demand
	Log     ChainLog       // nil: only what the graph holds
	Mapping causal.Mapping // zero value: causal.DefaultMapping
	Logger  *slog.Logger
}

// Chain returns the ranked causes of one subject. An unknown subject is an error wrapping
// ErrNotFound; a kind the mapping does not know, one wrapping ErrInvalid.
func (c Chains) Chain(ctx context.Context, ref Ref) (Chain, error) {
	m := c.mapping()
	if ref.ID == "" && ref.TraceID == "" {
		return Chain{}, fmt.Errorf("chain: give a kind and ID or a trace ID: %w", ErrInvalid)
	}
	if ref.ID != "" {
		if _, ok := m.Concept(ref.Kind); !ok {
			return Chain{}, fmt.Errorf("chain: unknown kind %q (the business mapping knows %v): %w", ref.Kind, m.Kinds(), ErrInvalid)
		}
	}
	if ref.ID == "" {
		// A trace: the business object at its root.
		obj, err := c.objectOfTrace(ctx, ref.TraceID)
		if err != nil {
			return Chain{}, err
		}
		ref.Kind, ref.ID = obj.Kind, obj.ID
	}
	if c.Graph != nil {
		r, err := causal.ReadResult(ctx, c.Graph, ref.Kind, ref.ID)
		switch {
		case err == nil:
			return ChainOf(r), nil
		case ctx.Err() != nil:
			return Chain{}, ctx.Err()
		case c.Log == nil && errors.Is(err, causal.ErrNotFound):
			return Chain{}, fmt.Errorf("%s: %w", RefName(ref), ErrNotFound)
		case c.Log == nil:
			return Chain{}, fmt.Errorf("chain of %s: %w", RefName(ref), err)
		case !errors.Is(err, causal.ErrNotFound):
			c.logger().Warn("causal graph unreadable; computing the chain from the event log", "subject", RefName(ref), "err", err)
		}
	}
	if c.Log == nil {
		return Chain{}, fmt.Errorf("chain of %s: no causal graph and no event log to compute it from: %w", RefName(ref), ErrInvalid)
	}
	r, err := c.compute(ctx, causal.Object{Kind: ref.Kind, ID: ref.ID})
	if err != nil {
		return Chain{}, err
	}
	return ChainOf(r), nil
}

// KindsOf is the business mapping's concepts as the kinds Subjects lists, so one file
// names a firm's own concepts for every use case.
func KindsOf(m causal.Mapping) []Kind {
	out := make([]Kind, len(m.Concepts))
	for i, c := range m.Concepts {
		out[i] = Kind{Name: c.Kind, Attr: c.IDAttr}
	}
	return out
}

func (c Chains) mapping() causal.Mapping {
	if c.Mapping.Concepts == nil {
		return causal.DefaultMapping()
	}
	return c.Mapping
}

func (c Chains) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// ChainOf turns the causal engine's result into the use-case contract.
func ChainOf(r causal.Result) Chain {
	ch := Chain{Subject: Subject{Kind: r.Object.Kind, ID: r.Object.ID, StartNs: r.StartNs, DurationNs: r.DurationNs,
		Status: r.Status, TraceID: r.TraceID, Service: r.Service, Node: r.Node, PID: r.PID, Comm: r.Comm,
		Spans: r.SpanCount, Events: r.Events}, Causes: make([]Cause, 0, len(r.Causes))}
	for i, c := range r.Causes {
		out := Cause{Rank: i + 1, Kind: c.Kind, ExplainedNs: c.ExplainedNs, Share: c.Share, Confidence: c.Confidence,
			Join: c.Join, Rule: c.Rule, WhatIfNs: c.WhatIfNs, Process: toProcess(c.Process), Resource: c.Resource,
			Summary: c.Summary, Evidence: make([]string, len(c.Evidence)), Path: make([]Step, len(c.Path))}
		for j, id := range c.Evidence {
			out.Evidence[j] = strconv.FormatUint(id, 10)
		}
		for j, s := range c.Path {
			out.Path[j] = Step{Kind: s.Kind, Name: s.Name, DurationNs: s.DurationNs, Process: toProcess(s.Process), Detail: s.Detail}
		}
		ch.Causes = append(ch.Causes, out)
	}
	return ch
}

func toProcess(p *causal.Proc) *Process {
	if p == nil {
		return nil
	}
	return &Process{Node: p.Node, PID: p.PID, Comm: p.Comm}
}
