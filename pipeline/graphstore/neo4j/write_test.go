package neo4j

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/causal"
)

// TestBatches: transactions hold at most max rows, statements are split where needed,
// and rows keep their order (nodes before the edges that need them).
func TestBatches(t *testing.T) {
	rows := func(from, to int) []any {
		var r []any
		for i := from; i < to; i++ {
			r = append(r, i)
		}
		return r
	}
	stmts := []statement{{query: "a", rows: rows(0, 5)}, {query: "b", rows: rows(5, 7)}, {query: "c", rows: rows(7, 12)}}
	type shape struct {
		Query string
		Rows  []any
	}
	var got [][]shape
	for _, tx := range batches(stmts, 4) {
		var s []shape
		for _, st := range tx {
			s = append(s, shape{st.query, st.rows})
		}
		got = append(got, s)
	}
	want := [][]shape{
		{{"a", rows(0, 4)}},
		{{"a", rows(4, 5)}, {"b", rows(5, 7)}, {"c", rows(7, 8)}},
		{{"c", rows(8, 12)}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
	if got := batches(nil, 4); len(got) != 0 {
		t.Errorf("batches of nothing: %v", got)
	}
}

// TestStaleElementIDsFallBackToIDs: an edge statement whose element IDs find nothing (the
// node was deleted and its ID reused, or never returned) still writes its edges, by ID.
func TestStaleElementIDsFallBackToIDs(t *testing.T) {
	ctx := context.Background()
	s, p := openTest(t, "stale")
	a, b := p+"a", p+"b"
	if err := s.Write(ctx, causal.Graph{Nodes: []causal.Node{{ID: a, Label: causal.LabelSpan}, {ID: b, Label: causal.LabelCause}}}); err != nil {
		t.Fatal(err)
	}
	row := &edgeRow{e: &causal.Edge{From: a, To: b, Type: "CAUSED_BY", ExplainedNs: 5},
		a: "4:00000000-0000-0000-0000-000000000000:999999999", b: "nonsense"}
	st := statement{query: edgeQuery("CAUSED_BY"), byID: edgeQueryByID("CAUSED_BY"), rows: []any{row}}
	if err := s.commit(ctx, []statement{st}, nil); err != nil {
		t.Fatal(err)
	}
	paths, err := s.Causes(ctx, a, 0)
	if err != nil || len(paths) != 1 || paths[0].Edges[0].ExplainedNs != 5 {
		t.Errorf("Causes after a write with stale element IDs: %v, %v", paths, err)
	}
}
