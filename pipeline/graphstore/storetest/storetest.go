// Package storetest is the contract suite every causal graph store passes (Neo4j and the
// embedded store run the same tests): idempotent writes, ranking, depth limits, unknown
// roots, cycles, large fan-out, concurrent writers and a store reopened after Close.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/graphstore"
)

// Store is what every causal graph store is.
type Store interface {
	causal.Writer
	causal.Reader
	Close() error
}

// New prepares the store of one test and returns how to open it. Every node ID the test
// writes starts with prefix, unique to the test, so that a store shared by tests running at
// the same time (one Neo4j server) keeps them apart and can delete the test's data in a
// t.Cleanup. The suite calls open again after closing the first store, and expects to find
// what it wrote.
type New func(t *testing.T, prefix string) (open func() (Store, error))

// Run runs the contract suite. Its tests run in parallel with each other.
func Run(t *testing.T, newStore New) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"IdempotentWrites", testIdempotentWrites},
		{"Ranking", testRanking},
		{"DepthLimits", testDepthLimits},
		{"UnknownRoot", testUnknownRoot},
		{"Cycles", testCycles},
		{"LargeFanOut", testLargeFanOut},
		{"ConcurrentWriters", testConcurrentWriters},
		{"Reopen", testReopen},
		{"BadInputWritesNothing", testBadInput},
		{"ClosedStore", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b [4]byte
			_, _ = rand.Read(b[:])
			prefix := "kprobe-test-" + hex.EncodeToString(b[:]) + "-" + tc.name + "/"
			h := &harness{t: t, prefix: prefix, open: newStore(t, prefix)}
			h.s = h.reopen()
			tc.fn(t, h)
		})
	}
}

// harness is one test's store and its ID prefix.
type harness struct {
	t      *testing.T
	prefix string
	open   func() (Store, error)
	s      Store
}

func (h *harness) reopen() Store {
	h.t.Helper()
	s, err := h.open()
	if err != nil {
		h.t.Fatalf("opening store: %v", err)
	}
	h.t.Cleanup(func() { _ = s.Close() })
	return s
}

// id prefixes a test-local ID.
func (h *harness) id(s string) string { return h.prefix + s }

func (h *harness) node(id, label string, props ...string) causal.Node {
	n := causal.Node{ID: h.id(id), Label: label}
	for i := 0; i+1 < len(props); i += 2 {
		if n.Props == nil {
			n.Props = map[string]string{}
		}
		n.Props[props[i]] = props[i+1]
	}
	return n
}

func (h *harness) edge(from, to, typ string, explained int64) causal.Edge {
	return causal.Edge{From: h.id(from), To: h.id(to), Type: typ, ExplainedNs: explained,
		Rule: "rule-" + typ, Confidence: 0.5, Join: "tid"}
}

func (h *harness) write(g causal.Graph) {
	h.t.Helper()
	if err := h.s.Write(context.Background(), g); err != nil {
		h.t.Fatalf("Write: %v", err)
	}
}

func (h *harness) subgraph(root string, depth int) causal.Graph {
	h.t.Helper()
	g, err := h.s.Subgraph(context.Background(), h.id(root), depth)
	if err != nil {
		h.t.Fatalf("Subgraph(%s, %d): %v", root, depth, err)
	}
	return g
}

func (h *harness) causes(root string, limit int) []causal.Path {
	h.t.Helper()
	p, err := h.s.Causes(context.Background(), h.id(root), limit)
	if err != nil {
		h.t.Fatalf("Causes(%s, %d): %v", root, limit, err)
	}
	return p
}

// ends names each path by its node IDs without the test prefix, joined by " > ".
func (h *harness) ends(paths []causal.Path) []string {
	var out []string
	for _, p := range paths {
		var ids []string
		for _, n := range p.Nodes {
			ids = append(ids, strings.TrimPrefix(n.ID, h.prefix))
		}
		out = append(out, strings.Join(ids, " > "))
	}
	return out
}

// sorted is g as Subgraph returns it: nodes by ID, edges by (From, To, Type).
func sorted(g causal.Graph) causal.Graph {
	g.Nodes = slices.Clone(g.Nodes)
	g.Edges = slices.Clone(g.Edges)
	slices.SortFunc(g.Nodes, graphstore.CompareNodes)
	slices.SortFunc(g.Edges, graphstore.CompareEdges)
	return g
}

// diffOpts treats nil and empty maps and slices alike: "no props" either way.
var diffOpts = cmpopts.EquateEmpty()

// chain is a settlement with two spans, three causes and the processes behind them.
func (h *harness) chain(root string) causal.Graph {
	r := func(s string) string { return root + "/" + s }
	g := causal.Graph{
		Nodes: []causal.Node{
			h.node(root, causal.LabelSettlement, "settlement.id", root),
			h.node(r("span-a"), causal.LabelSpan, "name", "post ledger"),
			h.node(r("span-b"), causal.LabelSpan, "name", "confirm"),
			h.node(r("cpu"), causal.LabelCause, "kind", "cpu_contention"),
			h.node(r("peer"), causal.LabelCause, "kind", "slow_peer"),
			h.node(r("disk"), causal.LabelCause, "kind", "storage"),
			h.node(r("hog"), causal.LabelProcess, "pid", "1234", "comm", "hog"),
		},
		Edges: []causal.Edge{
			h.edge(root, r("span-a"), "HAS_SPAN", 0),
			h.edge(root, r("span-b"), "HAS_SPAN", 0),
			h.edge(r("span-a"), r("cpu"), "CAUSED_BY", 30_000_000),
			h.edge(r("span-b"), r("peer"), "CAUSED_BY", 151_000_000),
			h.edge(r("span-b"), r("disk"), "CAUSED_BY", 12_000_000),
			h.edge(r("cpu"), r("hog"), "HELD_BY", 30_000_000),
		},
	}
	g.Edges[3].Evidence = []uint64{1, 1<<63 + 5, 42}
	g.Edges[3].Confidence = 0.9
	g.Edges[3].Join = "4-tuple"
	return g
}

func testRoundTrip(t *testing.T, h *harness) {
	g := h.chain("s1")
	// An edge to a node no write names: the edge is kept, its far end is a bare node.
	g.Edges = append(g.Edges, h.edge("s1/disk", "s1/file", "ON_RESOURCE", 0))
	h.write(g)
	want := sorted(g)
	want.Nodes = append(want.Nodes, causal.Node{ID: h.id("s1/file")})
	want = sorted(want)
	if diff := cmp.Diff(want, h.subgraph("s1", 10), diffOpts); diff != "" {
		t.Errorf("Subgraph (-want +got):\n%s", diff)
	}
	got := h.causes("s1", 0)
	if diff := cmp.Diff([]string{"s1 > s1/span-b > s1/peer", "s1 > s1/span-a > s1/cpu", "s1 > s1/span-b > s1/disk"}, h.ends(got)); diff != "" {
		t.Errorf("Causes order (-want +got):\n%s", diff)
	}
	if len(got) > 0 {
		wantTop := causal.Path{Nodes: []causal.Node{g.Nodes[0], g.Nodes[2], g.Nodes[4]}, Edges: []causal.Edge{g.Edges[1], g.Edges[3]}}
		if diff := cmp.Diff(wantTop, got[0], diffOpts); diff != "" {
			t.Errorf("top cause path (-want +got):\n%s", diff)
		}
	}
}

func testIdempotentWrites(t *testing.T, h *harness) {
	g := h.chain("s1")
	h.write(g)
	h.write(g)
	// The same items repeated inside one write fold too.
	h.write(causal.Graph{Nodes: append(slices.Clone(g.Nodes), g.Nodes...), Edges: append(slices.Clone(g.Edges), g.Edges...)})
	if diff := cmp.Diff(sorted(g), h.subgraph("s1", 10), diffOpts); diff != "" {
		t.Fatalf("after writing the same graph three times (-want +got):\n%s", diff)
	}

	// Re-writing an edge replaces it (the disk now explains the most); re-writing a node
	// merges its properties and takes its new label.
	disk := h.edge("s1/span-b", "s1/disk", "CAUSED_BY", 400_000_000)
	disk.Rule, disk.Confidence, disk.Join, disk.Evidence = "storage/v2", 0.75, "pid", []uint64{7}
	hog := h.node("s1/hog", causal.LabelThread, "tid", "1235", "comm", "hog-worker")
	h.write(causal.Graph{Nodes: []causal.Node{hog}, Edges: []causal.Edge{disk}})

	want := h.chain("s1")
	want.Edges[4] = disk
	want.Nodes[6] = h.node("s1/hog", causal.LabelThread, "pid", "1234", "tid", "1235", "comm", "hog-worker")
	if diff := cmp.Diff(sorted(want), h.subgraph("s1", 10), diffOpts); diff != "" {
		t.Errorf("after re-writing one edge and one node (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"s1 > s1/span-b > s1/disk", "s1 > s1/span-b > s1/peer", "s1 > s1/span-a > s1/cpu"}, h.ends(h.causes("s1", 0))); diff != "" {
		t.Errorf("ranking after the re-write (-want +got):\n%s", diff)
	}
}

func testRanking(t *testing.T, h *harness) {
	n := func(id, label string) causal.Node { return h.node(id, label) }
	h.write(causal.Graph{
		Nodes: []causal.Node{
			n("r", causal.LabelSettlement), n("span1", causal.LabelSpan), n("span2", causal.LabelSpan),
			n("A", causal.LabelCause), n("B", causal.LabelCause), n("C", causal.LabelCause),
			n("D", causal.LabelCause), n("E", causal.LabelCause), n("F", causal.LabelCause),
			n("G", causal.LabelCause), n("proc", causal.LabelProcess),
		},
		Edges: []causal.Edge{
			h.edge("r", "span1", "HAS_SPAN", 0),
			h.edge("r", "span2", "HAS_SPAN", 0),
			h.edge("span1", "A", "CAUSED_BY", 100),
			h.edge("span1", "B", "CAUSED_BY", 300),
			h.edge("span2", "C", "CAUSED_BY", 200),
			h.edge("r", "D", "CAUSED_BY", 300),   // ties with B: the shorter path first
			h.edge("A", "E", "CAUSED_BY", 50),    // a cause of a cause
			h.edge("span2", "G", "CAUSED_BY", 5), // ties with F at equal length: IDs decide
			h.edge("span1", "F", "CAUSED_BY", 5),
			h.edge("B", "proc", "HELD_BY", 1_000), // not a Cause: never a ranked end
		},
	})
	all := []string{"r > D", "r > span1 > B", "r > span2 > C", "r > span1 > A", "r > span1 > A > E", "r > span1 > F", "r > span2 > G"}
	for _, tc := range []struct {
		limit int
		want  []string
	}{{0, all}, {2, all[:2]}, {7, all}, {100, all}, {1, all[:1]}} {
		if diff := cmp.Diff(tc.want, h.ends(h.causes("r", tc.limit))); diff != "" {
			t.Errorf("Causes limit %d (-want +got):\n%s", tc.limit, diff)
		}
	}
	// A cause reached twice (a diamond) is two paths.
	h.write(causal.Graph{Edges: []causal.Edge{h.edge("span2", "B", "CAUSED_BY", 1)}})
	got := h.ends(h.causes("r", 4))
	if diff := cmp.Diff([]string{"r > D", "r > span1 > B", "r > span2 > C", "r > span1 > A"}, got); diff != "" {
		t.Errorf("Causes after adding span2 -> B (-want +got):\n%s", diff)
	}
	if !slices.Contains(h.ends(h.causes("r", 0)), "r > span2 > B") {
		t.Errorf("the second path to B is missing")
	}
}

func testDepthLimits(t *testing.T, h *harness) {
	// r -> n1 -> ... -> n12, a cause hanging off every level, and a back edge n3 -> r.
	var g causal.Graph
	g.Nodes = append(g.Nodes, h.node("r", causal.LabelSettlement))
	prev := "r"
	for i := 1; i <= 12; i++ {
		id, c := fmt.Sprintf("n%02d", i), fmt.Sprintf("c%02d", i)
		g.Nodes = append(g.Nodes, h.node(id, causal.LabelSpan), h.node(c, causal.LabelCause))
		g.Edges = append(g.Edges, h.edge(prev, id, "CHILD_OF", 0), h.edge(id, c, "CAUSED_BY", int64(i)))
		prev = id
	}
	g.Edges = append(g.Edges, h.edge("n03", "r", "CHILD_OF", 0))
	h.write(g)

	for _, tc := range []struct {
		depth      int
		nodes      []string
		edgesCount int
	}{
		{0, []string{"r"}, 0},
		{1, []string{"n01", "r"}, 1},
		{2, []string{"c01", "n01", "n02", "r"}, 3},
		// n03 is at depth 3: its back edge to r is inside the set; its cause is not.
		{3, []string{"c01", "c02", "n01", "n02", "n03", "r"}, 6},
	} {
		sub := h.subgraph("r", tc.depth)
		var ids []string
		for _, n := range sub.Nodes {
			ids = append(ids, strings.TrimPrefix(n.ID, h.prefix))
		}
		if diff := cmp.Diff(tc.nodes, ids); diff != "" {
			t.Errorf("Subgraph depth %d nodes (-want +got):\n%s", tc.depth, diff)
		}
		if len(sub.Edges) != tc.edgesCount {
			t.Errorf("Subgraph depth %d: %d edges, want %d: %v", tc.depth, len(sub.Edges), tc.edgesCount, sub.Edges)
		}
	}
	// The cause of n(k) is k+1 hops away: Causes sees those within MaxCauseDepth.
	got := h.ends(h.causes("r", 0))
	if len(got) != causal.MaxCauseDepth-1 {
		t.Fatalf("Causes found %d paths, want %d (causes within %d hops): %v", len(got), causal.MaxCauseDepth-1, causal.MaxCauseDepth, got)
	}
	if deepest := got[0]; !strings.HasSuffix(deepest, fmt.Sprintf("c%02d", causal.MaxCauseDepth-1)) {
		t.Errorf("top cause %q, want the deepest one within reach, c%02d (it explains the most)", deepest, causal.MaxCauseDepth-1)
	}
	// From n05 the same chain is closer: deeper causes come into reach.
	if got := h.ends(h.causes("n05", 1)); len(got) != 1 || !strings.HasSuffix(got[0], fmt.Sprintf("c%02d", min(12, 5+causal.MaxCauseDepth-1))) {
		t.Errorf("Causes(n05, 1) = %v", got)
	}
}

func testUnknownRoot(t *testing.T, h *harness) {
	ctx := context.Background()
	h.write(h.chain("s1"))
	if _, err := h.s.Causes(ctx, h.id("nope"), 0); !errors.Is(err, causal.ErrNotFound) {
		t.Errorf("Causes of an unknown root: err %v, want ErrNotFound", err)
	}
	if _, err := h.s.Subgraph(ctx, h.id("nope"), 3); !errors.Is(err, causal.ErrNotFound) {
		t.Errorf("Subgraph of an unknown root: err %v, want ErrNotFound", err)
	}
	// A known node without causes is no error, and no paths.
	if got := h.causes("s1/hog", 0); len(got) != 0 {
		t.Errorf("Causes of a node with no causes: %v", got)
	}
	if _, err := h.s.Causes(ctx, h.id("s1/")+"span-a/..", 0); !errors.Is(err, causal.ErrNotFound) {
		t.Errorf("Causes of a near-miss ID: err %v, want ErrNotFound", err)
	}
}

func testCycles(t *testing.T, h *harness) {
	h.write(causal.Graph{
		Nodes: []causal.Node{h.node("r", causal.LabelSettlement), h.node("a", causal.LabelSpan), h.node("b", causal.LabelSpan),
			h.node("c", causal.LabelCause), h.node("d", causal.LabelCause)},
		Edges: []causal.Edge{
			h.edge("r", "a", "HAS_SPAN", 0), h.edge("a", "b", "CHILD_OF", 0), h.edge("b", "a", "CHILD_OF", 0),
			h.edge("b", "c", "CAUSED_BY", 10), h.edge("c", "d", "CAUSED_BY", 5), h.edge("d", "c", "CAUSED_BY", 7),
			h.edge("b", "r", "CHILD_OF", 0),
		},
	})
	want := []string{"r > a > b > c", "r > a > b > c > d"}
	if diff := cmp.Diff(want, h.ends(h.causes("r", 0))); diff != "" {
		t.Errorf("Causes through cycles (-want +got):\n%s", diff)
	}
	if got := h.subgraph("r", 50); len(got.Nodes) != 5 || len(got.Edges) != 7 {
		t.Errorf("Subgraph through cycles: %d nodes, %d edges, want 5 and 7", len(got.Nodes), len(got.Edges))
	}
}

func testLargeFanOut(t *testing.T, h *harness) {
	const spans = 3_000 // 9,001 items: more than one Neo4j transaction (5,000 rows each)
	g := causal.Graph{Nodes: []causal.Node{h.node("r", causal.LabelClearingWindow)}}
	for i := range spans {
		s, c := fmt.Sprintf("span%05d", i), fmt.Sprintf("cause%05d", i)
		// Explained times are a permutation of 0..spans-1, so the order is unique.
		g.Nodes = append(g.Nodes, h.node(s, causal.LabelSpan), h.node(c, causal.LabelCause))
		g.Edges = append(g.Edges, h.edge("r", s, "HAS_SPAN", 0), h.edge(s, c, "CAUSED_BY", int64(i*7919%spans)))
	}
	h.write(g)
	top := h.causes("r", 10)
	if len(top) != 10 {
		t.Fatalf("Causes limit 10: %d paths", len(top))
	}
	for i, p := range top {
		if got, want := p.Edges[len(p.Edges)-1].ExplainedNs, int64(spans-1-i); got != want {
			t.Errorf("rank %d explains %d, want %d", i+1, got, want)
		}
	}
	if all := h.causes("r", 0); len(all) != spans {
		t.Errorf("Causes limit 0: %d paths, want %d", len(all), spans)
	}
	sub := h.subgraph("r", 1)
	if len(sub.Nodes) != spans+1 || len(sub.Edges) != spans {
		t.Errorf("Subgraph depth 1: %d nodes, %d edges, want %d and %d", len(sub.Nodes), len(sub.Edges), spans+1, spans)
	}
}

func testConcurrentWriters(t *testing.T, h *harness) {
	const writers, rounds = 6, 5
	// Every writer draws its own settlement, but all of them share the same hog process
	// and CPU, and rewrite one shared edge: the writes contend on the same nodes.
	graphFor := func(w int) causal.Graph {
		root := fmt.Sprintf("s%d", w)
		g := h.chain(root)
		g.Nodes = append(g.Nodes, h.node("cpu0", causal.LabelCPU, "cpu", "0"), h.node("hog", causal.LabelProcess, "comm", "hog"))
		g.Edges = append(g.Edges,
			h.edge(root+"/cpu", "cpu0", "ON_RESOURCE", 0),
			h.edge(root+"/cpu", "hog", "HELD_BY", 1),
			h.edge("cpu0", "hog", "HELD_BY", 99))
		return g
	}
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			var err error
			for range rounds {
				if err = h.s.Write(context.Background(), graphFor(w)); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Write: %v", err)
		}
	}
	for w := range writers {
		root := fmt.Sprintf("s%d", w)
		want := graphFor(w)
		if diff := cmp.Diff(sorted(want), h.subgraph(root, 10), diffOpts); diff != "" {
			t.Errorf("writer %d's graph (-want +got):\n%s", w, diff)
		}
	}
	hub := h.subgraph("cpu0", 1)
	if len(hub.Nodes) != 2 || len(hub.Edges) != 1 {
		t.Errorf("shared node cpu0: %d nodes, %d edges, want 2 and 1 (no duplicates)", len(hub.Nodes), len(hub.Edges))
	}
}

func testReopen(t *testing.T, h *harness) {
	g := h.chain("s1")
	h.write(g)
	h.write(causal.Graph{Edges: []causal.Edge{h.edge("s1/span-b", "s1/disk", "CAUSED_BY", 500_000_000)}})
	wantCauses := h.causes("s1", 0)
	wantGraph := h.subgraph("s1", 10)
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	h.s = h.reopen()
	if diff := cmp.Diff(wantGraph, h.subgraph("s1", 10), diffOpts); diff != "" {
		t.Errorf("Subgraph after reopening (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantCauses, h.causes("s1", 0), diffOpts); diff != "" {
		t.Errorf("Causes after reopening (-want +got):\n%s", diff)
	}
	// The reopened store takes writes.
	h.write(causal.Graph{Nodes: []causal.Node{h.node("s2", causal.LabelSettlement)}})
	if got := h.subgraph("s2", 0); len(got.Nodes) != 1 {
		t.Errorf("write after reopening: %v", got)
	}
}

func testBadInput(t *testing.T, h *harness) {
	ctx := context.Background()
	bad := []struct {
		name string
		mod  func(*causal.Graph)
	}{
		{"label with a space", func(g *causal.Graph) { g.Nodes[1].Label = "Span X" }},
		{"label injection", func(g *causal.Graph) { g.Nodes[1].Label = "Span}) DETACH DELETE n //" }},
		{"reserved label", func(g *causal.Graph) { g.Nodes[1].Label = graphstore.ReservedLabel }},
		{"empty label", func(g *causal.Graph) { g.Nodes[1].Label = "" }},
		{"empty node ID", func(g *causal.Graph) { g.Nodes[1].ID = "" }},
		{"reserved property key", func(g *causal.Graph) { g.Nodes[1].Props = map[string]string{"_id": "x"} }},
		{"edge type", func(g *causal.Graph) { g.Edges[2].Type = "CAUSED-BY" }},
		{"empty edge end", func(g *causal.Graph) { g.Edges[2].To = "" }},
		{"confidence", func(g *causal.Graph) { g.Edges[2].Confidence = 1.5 }},
		{"negative explained", func(g *causal.Graph) { g.Edges[2].ExplainedNs = -1 }},
	}
	for i, tc := range bad {
		root := fmt.Sprintf("bad%d", i)
		g := h.chain(root)
		tc.mod(&g)
		if err := h.s.Write(ctx, g); err == nil {
			t.Errorf("%s: Write succeeded", tc.name)
		}
		if _, err := h.s.Subgraph(ctx, h.id(root), 1); !errors.Is(err, causal.ErrNotFound) {
			t.Errorf("%s: the rejected write left its root behind (Subgraph err %v)", tc.name, err)
		}
	}
	// The same graph, unmodified, is accepted: the rejections came from the changes.
	h.write(h.chain("good"))
	if got := h.subgraph("good", 1); len(got.Nodes) != 3 {
		t.Errorf("good write: %d nodes at depth 1, want 3", len(got.Nodes))
	}
}

func testClosed(t *testing.T, h *harness) {
	ctx := context.Background()
	h.write(h.chain("s1"))
	if err := h.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.s.Write(ctx, h.chain("s2")); err == nil {
		t.Errorf("Write after Close succeeded")
	}
	if _, err := h.s.Causes(ctx, h.id("s1"), 0); err == nil {
		t.Errorf("Causes after Close succeeded")
	}
	if _, err := h.s.Subgraph(ctx, h.id("s1"), 1); err == nil {
		t.Errorf("Subgraph after Close succeeded")
	}
}
