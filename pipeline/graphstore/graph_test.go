package graphstore

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/causal"
)

func TestNormalizeFoldsRepeats(t *testing.T) {
	in := causal.Graph{
		Nodes: []causal.Node{
			{ID: "a", Label: "Span", Props: map[string]string{"x": "1", "y": "1"}},
			{ID: "b", Label: "Cause"},
			{ID: "a", Label: "Thread", Props: map[string]string{"y": "2", "z": "2"}},
		},
		Edges: []causal.Edge{
			{From: "a", To: "b", Type: "CAUSED_BY", ExplainedNs: 1, Evidence: []uint64{}},
			{From: "a", To: "b", Type: "HELD_BY", ExplainedNs: 2},
			{From: "a", To: "b", Type: "CAUSED_BY", ExplainedNs: 3, Evidence: []uint64{9}},
		},
	}
	want := causal.Graph{
		Nodes: []causal.Node{
			{ID: "a", Label: "Thread", Props: map[string]string{"x": "1", "y": "2", "z": "2"}},
			{ID: "b", Label: "Cause"},
		},
		Edges: []causal.Edge{
			{From: "a", To: "b", Type: "CAUSED_BY", ExplainedNs: 3, Evidence: []uint64{9}},
			{From: "a", To: "b", Type: "HELD_BY", ExplainedNs: 2},
		},
	}
	got, err := Normalize(in)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Normalize (-want +got):\n%s", diff)
	}
	// The caller's maps are not written to.
	if in.Nodes[0].Props["y"] != "1" {
		t.Errorf("Normalize changed the caller's props: %v", in.Nodes[0].Props)
	}
}

func TestNormalizeRejects(t *testing.T) {
	ok := func() causal.Graph {
		return causal.Graph{
			Nodes: []causal.Node{{ID: "a", Label: "Span"}},
			Edges: []causal.Edge{{From: "a", To: "b", Type: "CAUSED_BY", Confidence: 1}},
		}
	}
	if _, err := Normalize(ok()); err != nil {
		t.Fatalf("the base graph is rejected: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		mod        func(*causal.Graph)
	}{
		{"empty ID", "empty ID", func(g *causal.Graph) { g.Nodes[0].ID = "" }},
		{"digit first", "want a letter", func(g *causal.Graph) { g.Nodes[0].Label = "1Span" }},
		{"unicode", "want a letter", func(g *causal.Graph) { g.Nodes[0].Label = "Spän" }},
		{"backtick", "want a letter", func(g *causal.Graph) { g.Nodes[0].Label = "Span`" }},
		{"reserved label", "reserved", func(g *causal.Graph) { g.Nodes[0].Label = ReservedLabel }},
		{"reserved prop", "reserved", func(g *causal.Graph) { g.Nodes[0].Props = map[string]string{"_label": "x"} }},
		{"empty prop key", "non-empty", func(g *causal.Graph) { g.Nodes[0].Props = map[string]string{"": "x"} }},
		{"type", "want a letter", func(g *causal.Graph) { g.Edges[0].Type = "CAUSED BY" }},
		{"no type", "empty type", func(g *causal.Graph) { g.Edges[0].Type = "" }},
		{"no from", "empty From", func(g *causal.Graph) { g.Edges[0].From = "" }},
		{"NaN", "outside 0..1", func(g *causal.Graph) { g.Edges[0].Confidence = math.NaN() }},
		{"negative", "negative", func(g *causal.Graph) { g.Edges[0].ExplainedNs = -5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := ok()
			tc.mod(&g)
			_, err := Normalize(g)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Normalize: err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestComparePaths(t *testing.T) {
	path := func(explained int64, ids ...string) causal.Path {
		var p causal.Path
		for i, id := range ids {
			p.Nodes = append(p.Nodes, causal.Node{ID: id})
			if i > 0 {
				p.Edges = append(p.Edges, causal.Edge{From: ids[i-1], To: id, ExplainedNs: explained})
			}
		}
		return p
	}
	paths := []causal.Path{
		path(5, "r", "b", "c"), path(5, "r", "a", "c"), path(9, "r", "x", "y", "z"),
		path(5, "r", "c"), path(1, "r", "a"),
	}
	slices.SortFunc(paths, ComparePaths)
	var got []string
	for _, p := range paths {
		var ids []string
		for _, n := range p.Nodes {
			ids = append(ids, n.ID)
		}
		got = append(got, strings.Join(ids, ">"))
	}
	want := []string{"r>x>y>z", "r>c", "r>a>c", "r>b>c", "r>a"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}
