package neo4j

import (
	"testing"

	"github.com/google/go-cmp/cmp"
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
