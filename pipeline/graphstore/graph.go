package graphstore

import (
	"cmp"
	"fmt"
	"math"
	"strings"

	"github.com/kprobe/kprobe/pipeline/causal"
)

// Normalize checks a graph before it is written and folds repeated items the way a store
// would if they came in separate writes: a node written twice keeps the last label and the
// union of its properties (later values win), an edge written twice with the same (From,
// To, Type) keeps the last one. Items keep the order of their first appearance. Nothing
// is written when this fails, so the error names the first offending item. The result
// shares property maps and evidence with g (a merged node gets a map of its own): the
// stores encode it before Write returns, and the caller does not change g meanwhile.
func Normalize(g causal.Graph) (causal.Graph, error) {
	out := causal.Graph{Nodes: make([]causal.Node, 0, len(g.Nodes)), Edges: make([]causal.Edge, 0, len(g.Edges))}
	nodes := make(map[string]int, len(g.Nodes))
	for i, n := range g.Nodes {
		if err := checkNode(n); err != nil {
			return causal.Graph{}, fmt.Errorf("node %d (%q): %w", i, n.ID, err)
		}
		if len(n.Props) == 0 {
			n.Props = nil
		}
		if j, ok := nodes[n.ID]; ok {
			prev := &out.Nodes[j]
			prev.Label = n.Label
			if len(n.Props) > 0 {
				prev.Props = mergeProps(mergeProps(nil, prev.Props), n.Props)
			}
			continue
		}
		nodes[n.ID] = len(out.Nodes)
		out.Nodes = append(out.Nodes, n)
	}
	type key struct{ from, to, typ string }
	edges := make(map[key]int, len(g.Edges))
	for i, e := range g.Edges {
		if err := checkEdge(e); err != nil {
			return causal.Graph{}, fmt.Errorf("edge %d (%s -%s-> %s): %w", i, e.From, e.Type, e.To, err)
		}
		if len(e.Evidence) == 0 {
			e.Evidence = nil
		}
		k := key{e.From, e.To, e.Type}
		if j, ok := edges[k]; ok {
			out.Edges[j] = e
			continue
		}
		edges[k] = len(out.Edges)
		out.Edges = append(out.Edges, e)
	}
	return out, nil
}

// mergeProps returns dst with src's entries laid over it (a fresh map when dst is nil);
// nil when both are empty, so stores and tests compare nil, never an empty map.
func mergeProps(dst, src map[string]string) map[string]string {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		dst = make(map[string]string, len(src))
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

func checkNode(n causal.Node) error {
	if n.ID == "" {
		return fmt.Errorf("empty ID")
	}
	if err := CheckName("label", n.Label); err != nil {
		return err
	}
	if n.Label == ReservedLabel {
		return fmt.Errorf("label %q is reserved for the stores", n.Label)
	}
	for k := range n.Props {
		if k == "" || strings.HasPrefix(k, "_") {
			return fmt.Errorf("property key %q: keys must be non-empty and not start with '_' (reserved for the stores)", k)
		}
	}
	return nil
}

func checkEdge(e causal.Edge) error {
	switch {
	case e.From == "" || e.To == "":
		return fmt.Errorf("empty From or To")
	case e.ExplainedNs < 0:
		return fmt.Errorf("negative ExplainedNs %d", e.ExplainedNs)
	case math.IsNaN(e.Confidence) || e.Confidence < 0 || e.Confidence > 1:
		return fmt.Errorf("confidence %v outside 0..1", e.Confidence)
	}
	return CheckName("type", e.Type)
}

// ReservedLabel is the label every node carries in Neo4j (the one its uniqueness constraint
// is on); a graph may not use it.
const ReservedLabel = "KprobeNode"

// CheckName accepts the names a label or an edge type may have: a letter, then letters,
// digits or underscores. Neo4j needs them as identifiers (they are part of the query text
// there, never user input), and both stores enforce the same rule so that a graph that
// one store accepts, the other does too.
func CheckName(what, s string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	for i, r := range s {
		letter := r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z'
		if letter || i > 0 && (r == '_' || r >= '0' && r <= '9') {
			continue
		}
		return fmt.Errorf("%s %q: want a letter, then letters, digits or '_'", what, s)
	}
	return nil
}

// ComparePaths orders ranked causes (see causal.Reader.Causes): larger ExplainedNs of the
// last edge first, then the shorter path, then the path whose node IDs sort first.
func ComparePaths(a, b causal.Path) int {
	if c := cmp.Compare(lastExplained(b), lastExplained(a)); c != 0 {
		return c
	}
	if c := cmp.Compare(len(a.Nodes), len(b.Nodes)); c != 0 {
		return c
	}
	for i := range a.Nodes {
		if c := strings.Compare(a.Nodes[i].ID, b.Nodes[i].ID); c != 0 {
			return c
		}
	}
	return 0
}

func lastExplained(p causal.Path) int64 {
	if len(p.Edges) == 0 {
		return 0
	}
	return p.Edges[len(p.Edges)-1].ExplainedNs
}

// CompareEdges orders a subgraph's edges by (From, To, Type).
func CompareEdges(a, b causal.Edge) int {
	return cmp.Or(strings.Compare(a.From, b.From), strings.Compare(a.To, b.To), strings.Compare(a.Type, b.Type))
}

// CompareNodes orders a subgraph's nodes by ID.
func CompareNodes(a, b causal.Node) int { return strings.Compare(a.ID, b.ID) }
