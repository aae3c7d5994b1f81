package causal

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"

	"github.com/kprobe/kprobe/pipeline/span"
)

// The graph the engine draws for one business object:
//
//	(Settlement 4821) -HAS_SPAN-> (Span) -HAS_CHILD-> (Span) ...
//	(Settlement 4821) -CAUSED_BY {explained_ns, rule, evidence}-> (Cause)
//	(Cause) -IN_SPAN-> (Span)   -HELD_BY-> (Process)   -ON_RESOURCE-> (File | Socket | CPU)
//	(Settlement 4821) -INCLUDES-> (Payment PAY-98721)   (a business object in its spans)
//
// Causes hang off the business object itself, so Reader.Causes(object) finds them in one
// hop and a containing object (a clearing window) reaches its members' causes in two.

// Edge types.
const (
	EdgeHasSpan    = "HAS_SPAN"
	EdgeHasChild   = "HAS_CHILD"
	EdgeCausedBy   = "CAUSED_BY"
	EdgeInSpan     = "IN_SPAN"
	EdgeHeldBy     = "HELD_BY"
	EdgeOnResource = "ON_RESOURCE"
	EdgeIncludes   = "INCLUDES"
)

// Property keys of business and cause nodes (strings, as graph stores keep them).
const (
	PropKind        = "kind"
	PropID          = "id"
	PropStartNs     = "start_ns"
	PropDurationNs  = "duration_ns"
	PropStatus      = "status"
	PropTraceID     = "trace_id"
	PropService     = "service"
	PropNode        = "node"
	PropPID         = "pid"
	PropTID         = "tid"
	PropComm        = "comm"
	PropSpans       = "spans"
	PropEvents      = "events"
	PropSubject     = "subject" // on a cause: the business node it explains
	PropRule        = "rule"
	PropExplainedNs = "explained_ns"
	PropWhatIfNs    = "what_if_ns"
	PropShare       = "share"
	PropConfidence  = "confidence"
	PropJoin        = "join"
	PropResource    = "resource"
	PropSummary     = "summary"
	PropSpanID      = "span_id"
	PropSpanName    = "span_name"
	PropPath        = "path" // JSON array of Step
	PropName        = "name"
	// PropDrawing ties an object's causes to one drawing of it: an object drawn again
	// (more of its spans or events came later) keeps its earlier cause nodes, which
	// readers skip.
	PropDrawing = "drawing"
)

// drawing names one drawing of a result: what it covered and what it found, so a
// drawing whose causes changed never shares its name with the one it replaces.
func drawing(r Result) string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d/%d/%d", r.StartNs, r.DurationNs, r.SpanCount, r.Events)
	for i := range r.Causes {
		fmt.Fprintf(h, "/%s=%d", r.Causes[i].Key, r.Causes[i].ExplainedNs)
	}
	return strconv.FormatUint(h.Sum64(), 36)
}

// SpanNodeID is a span's graph node ID.
func SpanNodeID(traceID, spanID string) string { return "span/" + traceID + "/" + spanID }

// ProcessNodeID is a process's graph node ID.
func ProcessNodeID(node string, pid uint32) string {
	return "process/" + node + "/" + strconv.FormatUint(uint64(pid), 10)
}

// CauseNodeID is the graph node ID of one cause of one business object.
func CauseNodeID(object, key string) string { return "cause/" + object + "/" + key }

// BuildGraph draws a result: the object, its spans, its causes and what they name.
// Others are the business objects found on its spans (by the mapping) besides itself.
func BuildGraph(r Result, m Mapping) Graph {
	g := Graph{Nodes: make([]Node, 0, 1+len(r.Spans)+3*len(r.Causes)), Edges: make([]Edge, 0, len(r.Spans)+4*len(r.Causes))}
	obj, dr := r.Object.NodeID(), drawing(r)
	itoa := func(v int64) string { return strconv.FormatInt(v, 10) }
	g.Nodes = append(g.Nodes, Node{ID: obj, Label: r.Object.Label, Props: map[string]string{
		PropKind: r.Object.Kind, PropID: r.Object.ID, PropStartNs: itoa(r.StartNs), PropDurationNs: itoa(r.DurationNs),
		PropStatus: r.Status, PropTraceID: r.TraceID, PropService: r.Service, PropNode: r.Node,
		PropPID: itoa(int64(r.PID)), PropTID: itoa(int64(r.TID)), PropComm: r.Comm,
		PropSpans: strconv.Itoa(r.SpanCount), PropEvents: strconv.Itoa(r.Events), PropDrawing: dr}})

	ids := map[string]bool{}
	for _, s := range r.Spans {
		ids[s.TraceID+"/"+s.SpanID] = true
	}
	included := map[string]bool{obj: true}
	for i := range r.Spans {
		s := &r.Spans[i]
		id := SpanNodeID(s.TraceID, s.SpanID)
		g.Nodes = append(g.Nodes, spanNode(s))
		if s.ParentID != "" && ids[s.TraceID+"/"+s.ParentID] {
			g.Edges = append(g.Edges, Edge{From: SpanNodeID(s.TraceID, s.ParentID), To: id, Type: EdgeHasChild})
		} else {
			g.Edges = append(g.Edges, Edge{From: obj, To: id, Type: EdgeHasSpan})
			continue // a top span carries the object itself
		}
		for _, o := range m.Objects(s) {
			if oid := o.NodeID(); !included[oid] {
				included[oid] = true
				g.Nodes = append(g.Nodes, Node{ID: oid, Label: o.Label, Props: map[string]string{PropKind: o.Kind, PropID: o.ID}})
				g.Edges = append(g.Edges, Edge{From: obj, To: oid, Type: EdgeIncludes})
			}
		}
	}

	seen := map[string]bool{}
	for _, c := range r.Causes {
		cid := CauseNodeID(obj, c.Key)
		path, _ := json.Marshal(c.Path)
		props := make(map[string]string, 18)
		props[PropSubject], props[PropKind], props[PropRule] = obj, c.Kind, c.Rule
		props[PropExplainedNs], props[PropWhatIfNs] = itoa(c.ExplainedNs), itoa(c.WhatIfNs)
		props[PropShare] = strconv.FormatFloat(c.Share, 'g', -1, 64)
		props[PropConfidence], props[PropJoin] = strconv.FormatFloat(c.Confidence, 'g', -1, 64), c.Join
		props[PropResource], props[PropSummary] = c.Resource, c.Summary
		props[PropSpanID], props[PropSpanName] = c.SpanID, c.SpanName
		props[PropPath], props[PropDurationNs] = string(path), itoa(r.DurationNs)
		props[PropDrawing] = dr
		if c.Process != nil {
			props[PropNode], props[PropPID], props[PropComm] = c.Process.Node, itoa(int64(c.Process.PID)), c.Process.Comm
		}
		g.Nodes = append(g.Nodes, Node{ID: cid, Label: LabelCause, Props: props})
		g.Edges = append(g.Edges, Edge{From: obj, To: cid, Type: EdgeCausedBy, ExplainedNs: c.ExplainedNs, Rule: c.Rule,
			Confidence: c.Confidence, Join: c.Join, Evidence: slices.Clone(c.Evidence)})
		if c.SpanID != "" {
			g.Edges = append(g.Edges, Edge{From: cid, To: SpanNodeID(r.TraceID, c.SpanID), Type: EdgeInSpan})
			if sp := findSpan(r.Spans, c.SpanID); sp != nil {
				g.Edges[len(g.Edges)-1].To = SpanNodeID(sp.TraceID, sp.SpanID)
			}
		}
		if p := c.Process; p != nil {
			pid := ProcessNodeID(p.Node, p.PID)
			if !seen[pid] {
				seen[pid] = true
				g.Nodes = append(g.Nodes, Node{ID: pid, Label: LabelProcess, Props: map[string]string{
					PropNode: p.Node, PropPID: itoa(int64(p.PID)), PropComm: p.Comm, PropName: p.String()}})
			}
			g.Edges = append(g.Edges, Edge{From: cid, To: pid, Type: EdgeHeldBy})
		}
		if c.resNode != nil {
			if !seen[c.resNode.ID] {
				seen[c.resNode.ID] = true
				g.Nodes = append(g.Nodes, *c.resNode)
			}
			g.Edges = append(g.Edges, Edge{From: cid, To: c.resNode.ID, Type: EdgeOnResource})
		}
	}
	return g
}

func spanNode(s *span.Span) Node {
	itoa := func(v int64) string { return strconv.FormatInt(v, 10) }
	return Node{ID: SpanNodeID(s.TraceID, s.SpanID), Label: LabelSpan, Props: map[string]string{
		PropName: s.Name, PropTraceID: s.TraceID, "span_id": s.SpanID, "parent_id": s.ParentID,
		PropService: s.Service, PropNode: s.Host, PropPID: itoa(int64(s.PID)), PropTID: itoa(int64(s.TID)),
		PropStartNs: itoa(s.StartNs), "end_ns": itoa(s.EndNs), PropStatus: s.Status}}
}

func findSpan(spans []span.Span, id string) *span.Span {
	for i := range spans {
		if spans[i].SpanID == id {
			return &spans[i]
		}
	}
	return nil
}
