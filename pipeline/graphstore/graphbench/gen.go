package graphbench

import (
	"fmt"
	"strconv"

	"github.com/kprobe/kprobe/pipeline/causal"
)

// Shape of a benchmark subject, close to what the causal engine draws for one settlement:
// a root span with three children, a cause under each child and one unexplained cause
// under the root; the CPU and storage causes point at processes and files that many
// subjects share.
const (
	NodesPerSubject = 11
	EdgesPerSubject = 10
	sharedProcesses = 1_000
	sharedFiles     = 5_000
)

// Subject returns settlement i's graph, every ID under prefix. The processes and files
// it points at are shared with other subjects (the contended hubs of a real graph).
func Subject(prefix string, i int) causal.Graph {
	s := prefix + "settlement/" + strconv.Itoa(i)
	span := func(n int) string { return s + "/span/" + strconv.Itoa(n) }
	cause := func(kind string) string { return s + "/cause/" + kind }
	proc := prefix + "process/node-1/" + strconv.Itoa(1000+i%sharedProcesses)
	file := prefix + "file/8:1/" + strconv.Itoa(100_000+i%sharedFiles)
	// Explained times vary per subject so that ranking has work to do.
	x := int64(i*7919%1_000_003) * 1_000
	edge := func(from, to, typ, rule string, ns int64) causal.Edge {
		return causal.Edge{From: from, To: to, Type: typ, ExplainedNs: ns, Rule: rule, Confidence: 0.9, Join: "tid",
			Evidence: []uint64{uint64(i)<<20 | uint64(len(rule)), uint64(i)<<20 | 7}}
	}
	return causal.Graph{
		Nodes: []causal.Node{
			{ID: s, Label: causal.LabelSettlement, Props: map[string]string{"settlement.id": strconv.Itoa(i), "trace_id": fmt.Sprintf("%032x", i)}},
			{ID: span(0), Label: causal.LabelSpan, Props: map[string]string{"name": "settle"}},
			{ID: span(1), Label: causal.LabelSpan, Props: map[string]string{"name": "post ledger"}},
			{ID: span(2), Label: causal.LabelSpan, Props: map[string]string{"name": "confirm"}},
			{ID: span(3), Label: causal.LabelSpan, Props: map[string]string{"name": "write journal"}},
			{ID: cause("cpu"), Label: causal.LabelCause, Props: map[string]string{"kind": "cpu_contention"}},
			{ID: cause("peer"), Label: causal.LabelCause, Props: map[string]string{"kind": "slow_peer"}},
			{ID: cause("storage"), Label: causal.LabelCause, Props: map[string]string{"kind": "storage"}},
			{ID: cause("unexplained"), Label: causal.LabelCause, Props: map[string]string{"kind": "unexplained"}},
			// Written again by every subject that names them, as the engine does.
			{ID: proc, Label: causal.LabelProcess, Props: map[string]string{"comm": "hog", "pid": strconv.Itoa(1000 + i%sharedProcesses)}},
			{ID: file, Label: causal.LabelFile, Props: map[string]string{"path": "/var/lib/ledger/journal"}},
		},
		Edges: []causal.Edge{
			edge(s, span(0), "HAS_SPAN", "", 0),
			edge(span(0), span(1), "CHILD_OF", "", 0),
			edge(span(0), span(2), "CHILD_OF", "", 0),
			edge(span(0), span(3), "CHILD_OF", "", 0),
			edge(span(1), cause("cpu"), "CAUSED_BY", "cpu_contention", x%40_000_000),
			edge(span(2), cause("peer"), "CAUSED_BY", "slow_peer", x%150_000_000),
			edge(span(3), cause("storage"), "CAUSED_BY", "storage", x%90_000_000),
			edge(span(0), cause("unexplained"), "CAUSED_BY", "unexplained", 1_000_000),
			edge(cause("cpu"), proc, "HELD_BY", "cpu_contention", x%40_000_000),
			edge(cause("storage"), file, "ON_RESOURCE", "storage", 0),
		},
	}
}

// Batch returns subjects [from, from+n) as one graph.
func Batch(prefix string, from, n int) causal.Graph {
	var g causal.Graph
	g.Nodes = make([]causal.Node, 0, n*NodesPerSubject)
	g.Edges = make([]causal.Edge, 0, n*EdgesPerSubject)
	for i := from; i < from+n; i++ {
		s := Subject(prefix, i)
		g.Nodes = append(g.Nodes, s.Nodes...)
		g.Edges = append(g.Edges, s.Edges...)
	}
	return g
}

// Root is settlement i's node ID.
func Root(prefix string, i int) string { return prefix + "settlement/" + strconv.Itoa(i) }
