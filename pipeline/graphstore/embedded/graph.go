package embedded

import (
	"slices"
	"sort"
	"strings"

	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/graphstore"
)

// graph is the in-memory adjacency: nodes and edges in slices addressed by index, labels,
// types, rules, joins and property keys interned (a few dozen distinct strings across
// millions of items), event IDs in one arena. Few pointers per item keep the collector's
// work and the replay at open small. Not safe for concurrent use; Store guards it.
type graph struct {
	ids   map[string]uint32 // node ID → index in nodes
	nodes []node
	edges []edge
	keys  map[edgeKey]uint32 // (from, to, type) → index in edges

	names   []string // interned strings; 0 is ""
	nameIdx map[string]uint32
	cause   uint32   // the interned LabelCause
	ev      []uint64 // evidence of every edge; an edge holds a range

	applied int // nodes and edges applied, superseded ones included: tells when to compact
}

type node struct {
	id    string
	label uint32
	props []string // key, value pairs sorted by key: lighter than a map for two or three
	out   []uint32 // indices of outgoing edges
}

type edge struct {
	from, to        uint32
	typ, rule, join uint32
	evOff, evLen    uint32 // g.ev[evOff : evOff+evLen]
	explained       int64
	confidence      float64
}

type edgeKey struct{ from, to, typ uint32 }

// newGraph sizes its maps for about items nodes plus edges.
func newGraph(items int) *graph {
	g := &graph{
		ids:     make(map[string]uint32, items/2),
		keys:    make(map[edgeKey]uint32, items/2),
		nodes:   make([]node, 0, items/2),
		edges:   make([]edge, 0, items/2),
		names:   []string{""},
		nameIdx: map[string]uint32{"": 0},
	}
	g.cause = g.intern([]byte(causal.LabelCause))
	return g
}

func (g *graph) intern(b []byte) uint32 {
	if i, ok := g.nameIdx[string(b)]; ok { // no allocation: the compiler sees the lookup
		return i
	}
	i := uint32(len(g.names))
	s := string(b)
	g.names = append(g.names, s)
	g.nameIdx[s] = i
	return i
}

// nodeIndex returns id's node, creating it bare (no label) when it is new: an edge may
// name a node before any write does.
func (g *graph) nodeIndex(id []byte) uint32 {
	if i, ok := g.ids[string(id)]; ok {
		return i
	}
	i := uint32(len(g.nodes))
	s := string(id)
	g.nodes = append(g.nodes, node{id: s})
	g.ids[s] = i
	return i
}

// node and edge make graph the visitor of a record (walkPayload), for Write and replay
// alike, with the contract's semantics: nodes merge (last label, union of properties),
// edges replace.
func (g *graph) node(id, label []byte, props [][]byte) {
	nd := &g.nodes[g.nodeIndex(id)]
	nd.label = g.intern(label)
	for i := 0; i < len(props); i += 2 {
		nd.props = g.setProp(nd.props, props[i], props[i+1])
	}
	g.applied++
}

// setProp sets key to value in the sorted pairs kv, allocating only what is new.
func (g *graph) setProp(kv []string, key, value []byte) []string {
	n := len(kv) / 2
	i := sort.Search(n, func(i int) bool { return kv[2*i] >= string(key) })
	if i < n && kv[2*i] == string(key) {
		if kv[2*i+1] != string(value) {
			kv[2*i+1] = string(value)
		}
		return kv
	}
	return slices.Insert(kv, 2*i, g.names[g.intern(key)], string(value))
}

func (g *graph) edge(e *rawEdge) {
	k := edgeKey{g.nodeIndex(e.from), g.nodeIndex(e.to), g.intern(e.typ)}
	ed := edge{from: k.from, to: k.to, typ: k.typ, rule: g.intern(e.rule), join: g.intern(e.join),
		explained: e.explained, confidence: e.confidence}
	if j, ok := g.keys[k]; ok && g.edges[j].evLen == uint32(len(e.evidence)) {
		ed.evOff, ed.evLen = g.edges[j].evOff, g.edges[j].evLen // same size: reuse its range
		copy(g.ev[ed.evOff:], e.evidence)
	} else {
		ed.evOff, ed.evLen = uint32(len(g.ev)), uint32(len(e.evidence))
		g.ev = append(g.ev, e.evidence...)
	}
	g.applied++
	if j, ok := g.keys[k]; ok {
		g.edges[j] = ed
		return
	}
	j := uint32(len(g.edges))
	g.edges = append(g.edges, ed)
	g.keys[k] = j
	g.nodes[k.from].out = append(g.nodes[k.from].out, j)
}

func (g *graph) live() int { return len(g.nodes) + len(g.edges) }

func (g *graph) nodeAt(i uint32) causal.Node {
	n := &g.nodes[i]
	out := causal.Node{ID: n.id, Label: g.names[n.label]}
	if len(n.props) > 0 {
		out.Props = make(map[string]string, len(n.props)/2)
		for j := 0; j < len(n.props); j += 2 {
			out.Props[n.props[j]] = n.props[j+1]
		}
	}
	return out
}

func (g *graph) edgeAt(j uint32) causal.Edge {
	e := &g.edges[j]
	return causal.Edge{
		From: g.nodes[e.from].id, To: g.nodes[e.to].id, Type: g.names[e.typ],
		ExplainedNs: e.explained, Rule: g.names[e.rule], Confidence: e.confidence, Join: g.names[e.join],
		Evidence: slices.Clone(g.ev[e.evOff : e.evOff+e.evLen]),
	}
}

// causes walks outgoing edges depth-first from root, keeping simple paths that end on a
// Cause node within causal.MaxCauseDepth hops, and returns the best limit of them.
func (g *graph) causes(root uint32, limit int) []causal.Path {
	type found struct {
		edges     []uint32
		explained int64
	}
	var all []found
	var stack []uint32 // edge indices of the current path
	onPath := func(n uint32) bool {
		if n == root {
			return true
		}
		for _, j := range stack {
			if g.edges[j].to == n {
				return true
			}
		}
		return false
	}
	var visit func(n uint32)
	visit = func(n uint32) {
		if len(stack) == causal.MaxCauseDepth {
			return
		}
		for _, j := range g.nodes[n].out {
			to := g.edges[j].to
			if onPath(to) {
				continue
			}
			stack = append(stack, j)
			if g.nodes[to].label == g.cause {
				all = append(all, found{edges: slices.Clone(stack), explained: g.edges[j].explained})
			}
			visit(to)
			stack = stack[:len(stack)-1]
		}
	}
	visit(root)

	// Rank on indices first and build paths only for those kept: a fan-out of thousands
	// of causes asked for its top ten builds ten. The order is graphstore.ComparePaths
	// (every path starts at root, so node IDs compare from the second node on).
	slices.SortFunc(all, func(a, b found) int {
		if a.explained != b.explained {
			if a.explained > b.explained {
				return -1
			}
			return 1
		}
		if len(a.edges) != len(b.edges) {
			return len(a.edges) - len(b.edges)
		}
		for i := range a.edges {
			if c := strings.Compare(g.nodes[g.edges[a.edges[i]].to].id, g.nodes[g.edges[b.edges[i]].to].id); c != 0 {
				return c
			}
		}
		return 0
	})
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	if len(all) == 0 {
		return nil
	}
	paths := make([]causal.Path, len(all))
	rootNode := g.nodeAt(root)
	for i, f := range all {
		p := causal.Path{Nodes: make([]causal.Node, 0, len(f.edges)+1), Edges: make([]causal.Edge, 0, len(f.edges))}
		p.Nodes = append(p.Nodes, rootNode)
		for _, j := range f.edges {
			p.Edges = append(p.Edges, g.edgeAt(j))
			p.Nodes = append(p.Nodes, g.nodeAt(g.edges[j].to))
		}
		paths[i] = p
	}
	return paths
}

// subgraph returns the nodes within maxDepth hops of root and every edge between two of
// them, in the contract's order.
func (g *graph) subgraph(root uint32, maxDepth int) causal.Graph {
	in := map[uint32]bool{root: true}
	order := []uint32{root}
	frontier := []uint32{root}
	for depth := 0; depth < maxDepth && len(frontier) > 0; depth++ {
		var next []uint32
		for _, n := range frontier {
			for _, j := range g.nodes[n].out {
				if to := g.edges[j].to; !in[to] {
					in[to] = true
					order = append(order, to)
					next = append(next, to)
				}
			}
		}
		frontier = next
	}
	var out causal.Graph
	for _, n := range order {
		out.Nodes = append(out.Nodes, g.nodeAt(n))
		for _, j := range g.nodes[n].out {
			if in[g.edges[j].to] {
				out.Edges = append(out.Edges, g.edgeAt(j))
			}
		}
	}
	slices.SortFunc(out.Nodes, graphstore.CompareNodes)
	slices.SortFunc(out.Edges, graphstore.CompareEdges)
	return out
}

// snapshot returns the whole graph as writes of at most chunk items each, nodes first:
// replaying them gives this graph again, without the writes it superseded.
func (g *graph) snapshot(chunk int) []causal.Graph {
	var out []causal.Graph
	var cur causal.Graph
	flush := func() {
		if len(cur.Nodes)+len(cur.Edges) >= chunk {
			out, cur = append(out, cur), causal.Graph{}
		}
	}
	for i := range g.nodes {
		cur.Nodes = append(cur.Nodes, g.nodeAt(uint32(i)))
		flush()
	}
	for j := range g.edges {
		cur.Edges = append(cur.Edges, g.edgeAt(uint32(j)))
		flush()
	}
	if len(cur.Nodes)+len(cur.Edges) > 0 {
		out = append(out, cur)
	}
	return out
}
