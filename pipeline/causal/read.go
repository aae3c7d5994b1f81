package causal

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// ReadResult reads back what BuildGraph drew for one business object: its properties and
// its own causes (not those of the objects it includes), ranked. It returns an error
// wrapping ErrNotFound when the graph does not hold the object.
func ReadResult(ctx context.Context, r Reader, kind, id string) (Result, error) {
	obj := ObjectNodeID(kind, id)
	g, err := r.Subgraph(ctx, obj, 0)
	if err != nil {
		return Result{}, fmt.Errorf("reading %s: %w", obj, err)
	}
	var root *Node
	for i := range g.Nodes {
		if g.Nodes[i].ID == obj {
			root = &g.Nodes[i]
		}
	}
	if root == nil || root.Props[PropDurationNs] == "" {
		// Absent, or only named by another object's INCLUDES: not computed itself.
		return Result{}, fmt.Errorf("%s: %w", obj, ErrNotFound)
	}
	p := root.Props
	res := Result{Object: Object{Label: root.Label, Kind: p[PropKind], ID: p[PropID]},
		StartNs: atoi(p[PropStartNs]), DurationNs: atoi(p[PropDurationNs]), Status: p[PropStatus],
		TraceID: p[PropTraceID], Service: p[PropService], Node: p[PropNode], PID: uint32(atoi(p[PropPID])),
		TID: uint32(atoi(p[PropTID])), Comm: p[PropComm], Events: int(atoi(p[PropEvents])), SpanCount: int(atoi(p[PropSpans]))}
	paths, err := r.Causes(ctx, obj, 0)
	if err != nil {
		return Result{}, fmt.Errorf("reading the causes of %s: %w", obj, err)
	}
	for _, path := range paths {
		if len(path.Edges) != 1 || len(path.Nodes) != 2 {
			continue // a cause of an included object
		}
		n, e := path.Nodes[1], path.Edges[0]
		if n.Label != LabelCause || n.Props[PropSubject] != obj || n.Props[PropDrawing] != p[PropDrawing] {
			continue // another object's, or an earlier drawing's
		}
		c, err := causeFromNode(n, e)
		if err != nil {
			return Result{}, fmt.Errorf("cause %s of %s: %w", n.ID, obj, err)
		}
		res.Causes = append(res.Causes, c)
	}
	RankCauses(res.Causes)
	return res, nil
}

func causeFromNode(n Node, e Edge) (Cause, error) {
	p := n.Props
	c := Cause{Key: n.ID, Kind: p[PropKind], Rule: cmp.Or(e.Rule, p[PropRule]), ExplainedNs: e.ExplainedNs,
		WhatIfNs: atoi(p[PropWhatIfNs]), Confidence: e.Confidence, Join: cmp.Or(e.Join, p[PropJoin]),
		Resource: p[PropResource], SpanID: p[PropSpanID], SpanName: p[PropSpanName], Summary: p[PropSummary],
		Evidence: slices.Clone(e.Evidence)}
	c.Share, _ = strconv.ParseFloat(p[PropShare], 64)
	if p[PropPID] != "" {
		c.Process = &Proc{Node: p[PropNode], PID: uint32(atoi(p[PropPID])), Comm: p[PropComm]}
	}
	if s := p[PropPath]; s != "" {
		if err := json.Unmarshal([]byte(s), &c.Path); err != nil {
			return Cause{}, fmt.Errorf("decoding its path: %w", err)
		}
	}
	return c, nil
}

func atoi(s string) int64 {
	v, _ := strconv.ParseInt(s, 10, 64)
	return v
}
