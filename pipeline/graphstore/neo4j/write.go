package neo4j

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	driver "github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/graphstore"
)

// statement is one UNWIND query and its rows; a Write is a list of them, cut into
// transactions of at most BatchRows rows. Rows are sent as columns (one list per field,
// indexed by row number in the query): Bolt packs a list of strings far more cheaply
// than a map per row, and the client shares the machine with the server.
type statement struct {
	query  string
	params map[string]any // besides the columns
	rows   []any          // string (bare node), nodeRow or *edgeRow; one kind per statement
	// edges: the query that finds endpoints by ID, for rows whose nodes could not be
	// found by element ID (see edgeQuery).
	byID string
}

type nodeRow struct {
	id    string
	props map[string]string
}

type edgeRow struct {
	e    *causal.Edge
	a, b string // element IDs of From and To, once the nodes are written
}

// Write merges g into the graph. Nodes and edges are MERGEd on their keys (node ID; edge
// From, To, Type), so writing the same graph again changes nothing. A write of more than
// BatchRows items commits in several transactions, up to Writers at once: nodes first,
// then edges. If it fails half-way, writing it again completes it.
//
// Most of the server's time in a write goes to seeking string IDs in the uniqueness
// index, so each node is sought once: the node statements return the element IDs of
// what they merged, and the edge statements find their endpoints by those (a record
// fetch, no index).
func (s *Store) Write(ctx context.Context, g causal.Graph) error {
	g, err := graphstore.Normalize(g)
	if err != nil {
		return fmt.Errorf("writing graph: %w", err)
	}
	if len(g.Nodes) == 0 && len(g.Edges) == 0 {
		return nil
	}
	nodes, edges := plan(g)
	eids := &elementIDs{m: make(map[string]string, len(g.Nodes))}
	if err := s.commitAll(ctx, batches(nodes, s.opts.BatchRows), eids); err != nil {
		return fmt.Errorf("writing graph: %w", err)
	}
	for _, st := range edges {
		for _, r := range st.rows {
			row := r.(*edgeRow)
			row.a, row.b = eids.m[row.e.From], eids.m[row.e.To]
		}
	}
	if err := s.commitAll(ctx, batches(edges, s.opts.BatchRows), nil); err != nil {
		return fmt.Errorf("writing graph: %w", err)
	}
	return nil
}

// elementIDs maps node IDs to the element IDs the node statements returned.
type elementIDs struct {
	mu sync.Mutex
	m  map[string]string
}

// commitAll commits txs on up to Writers sessions at once. Within a phase they never
// wait on each other for nodes (a normalised write names each node once); edges into a
// shared node can deadlock, and the driver retries the loser.
func (s *Store) commitAll(ctx context.Context, txs [][]statement, eids *elementIDs) error {
	if len(txs) == 1 || s.opts.Writers == 1 {
		for _, tx := range txs {
			if err := s.commit(ctx, tx, eids); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan []statement)
	workers := min(s.opts.Writers, len(txs))
	errs := make(chan error, workers)
	for range workers {
		go func() {
			var err error
			for tx := range next {
				if err == nil {
					if err = s.commit(ctx, tx, eids); err != nil {
						cancel()
					}
				}
			}
			errs <- err
		}()
	}
	for _, tx := range txs {
		select {
		case next <- tx:
		case <-ctx.Done():
		}
	}
	close(next)
	var first error
	for range workers {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// plan turns a normalised graph into statements: nodes by label, and the endpoints of
// edges that this write does not name as nodes (created bare, so that no edge is dropped
// because its node comes in a later write); then edges by type. Grouping keeps the label
// and type in the query text, where Neo4j needs them, and each text is planned once.
func plan(g causal.Graph) (nodes, edges []statement) {
	byLabel := map[string][]any{}
	inBatch := make(map[string]bool, len(g.Nodes))
	for _, n := range g.Nodes {
		inBatch[n.ID] = true
		byLabel[n.Label] = append(byLabel[n.Label], nodeRow{id: n.ID, props: n.Props})
	}
	for _, label := range slices.Sorted(maps.Keys(byLabel)) {
		nodes = append(nodes, statement{query: nodeQuery(label), params: map[string]any{"label": label}, rows: byLabel[label]})
	}

	var bare []any
	byType := map[string][]any{}
	for i := range g.Edges {
		e := &g.Edges[i]
		for _, id := range []string{e.From, e.To} {
			if !inBatch[id] {
				inBatch[id] = true
				bare = append(bare, id)
			}
		}
		byType[e.Type] = append(byType[e.Type], &edgeRow{e: e})
	}
	if len(bare) > 0 {
		nodes = append(nodes, statement{query: bareNodeQuery, rows: bare})
	}
	for _, typ := range slices.Sorted(maps.Keys(byType)) {
		edges = append(edges, statement{query: edgeQuery(typ), byID: edgeQueryByID(typ), rows: byType[typ]})
	}
	return nodes, edges
}

// nodeQuery MERGEs nodes of one label. A node written before under another label loses
// it, so label scans (the chain query matches :Cause) stay true. It returns the element
// IDs of the nodes by row number.
func nodeQuery(label string) string {
	return `UNWIND range(0, size($ids) - 1) AS i
MERGE (n:KprobeNode {_id: $ids[i]})
WITH i, n, n._label AS old
FOREACH (o IN CASE WHEN old IS NOT NULL AND old <> $label THEN [old] ELSE [] END | REMOVE n:$(o))
SET n:` + label + `, n._label = $label, n += $props[i]
RETURN collect(i) AS idx, collect(elementId(n)) AS eids`
}

const bareNodeQuery = `UNWIND range(0, size($ids) - 1) AS i
MERGE (n:KprobeNode {_id: $ids[i]})
RETURN collect(i) AS idx, collect(elementId(n)) AS eids`

// edgeQuery MERGEs edges of one type, finding endpoints by element ID and checking
// their IDs (an element ID can be reused once its node is deleted): a row whose
// endpoints are not found is not counted, and the statement runs again by ID. Every
// property is set, evidence to null when there is none, so a re-written edge is
// replaced; naming them (not SET r = map) spares the plan an Eager step.
func edgeQuery(typ string) string {
	return `UNWIND range(0, size($from) - 1) AS i
MATCH (a) WHERE elementId(a) = $a[i]
MATCH (b) WHERE elementId(b) = $b[i]
WITH i, a, b WHERE a._id = $from[i] AND b._id = $to[i]
` + mergeEdge(typ)
}

func edgeQueryByID(typ string) string {
	return `UNWIND range(0, size($from) - 1) AS i
MATCH (a:KprobeNode {_id: $from[i]})
MATCH (b:KprobeNode {_id: $to[i]})
` + mergeEdge(typ)
}

func mergeEdge(typ string) string {
	return `MERGE (a)-[r:` + typ + `]->(b)
SET r.explained_ns = $explained[i], r.rule = $rule[i], r.confidence = $confidence[i],
    r.join = $join[i], r.evidence = $evidence[i]
RETURN count(*) AS n`
}

// columns turns a statement's rows into its query parameters.
func (st statement) columns() map[string]any {
	p := make(map[string]any, len(st.params)+9)
	for k, v := range st.params {
		p[k] = v
	}
	n := len(st.rows)
	switch st.rows[0].(type) {
	case string:
		ids := make([]string, n)
		for i, r := range st.rows {
			ids[i] = r.(string)
		}
		p["ids"] = ids
	case nodeRow:
		ids, props := make([]string, n), make([]any, n)
		for i, r := range st.rows {
			row := r.(nodeRow)
			ids[i], props[i] = row.id, row.props
			if row.props == nil {
				props[i] = map[string]string{}
			}
		}
		p["ids"], p["props"] = ids, props
	case *edgeRow:
		from, to, a, b := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		explained, confidence := make([]int64, n), make([]float64, n)
		rule, join, evidence := make([]string, n), make([]string, n), make([]any, n)
		for i, r := range st.rows {
			row := r.(*edgeRow)
			e := row.e
			from[i], to[i], a[i], b[i] = e.From, e.To, row.a, row.b
			explained[i], confidence[i], rule[i], join[i] = e.ExplainedNs, e.Confidence, e.Rule, e.Join
			if len(e.Evidence) > 0 {
				// Bolt integers are signed: event IDs keep their bits and come back as uint64.
				ev := make([]int64, len(e.Evidence))
				for j, id := range e.Evidence {
					ev[j] = int64(id)
				}
				evidence[i] = ev
			}
		}
		p["from"], p["to"], p["a"], p["b"] = from, to, a, b
		p["explained"], p["confidence"], p["rule"], p["join"], p["evidence"] = explained, confidence, rule, join, evidence
	}
	return p
}

// batches cuts statements into transactions of at most max rows each, splitting a
// statement's rows where needed and keeping their order.
func batches(stmts []statement, max int) [][]statement {
	var out [][]statement
	var cur []statement
	n := 0
	for _, st := range stmts {
		for len(st.rows) > 0 {
			if n == max {
				out, cur, n = append(out, cur), nil, 0
			}
			take := min(len(st.rows), max-n)
			part := st
			part.rows = st.rows[:take:take]
			cur = append(cur, part)
			n += take
			st.rows = st.rows[take:]
		}
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// commit runs one transaction; the driver retries it on transient errors (deadlocks
// between concurrent writers MERGEing the same nodes, leader changes). Element IDs that
// node statements return go into eids once the transaction has committed.
func (s *Store) commit(ctx context.Context, tx []statement, eids *elementIDs) error {
	sess := s.session(ctx, driver.AccessModeWrite)
	defer sess.Close(context.WithoutCancel(ctx))
	params := make([]map[string]any, len(tx))
	for i, st := range tx {
		params[i] = st.columns()
	}
	var got [][2]string
	_, err := sess.ExecuteWrite(ctx, func(t driver.ManagedTransaction) (any, error) {
		got = got[:0] // a retry starts over
		for i, st := range tx {
			res, err := t.Run(ctx, st.query, params[i])
			if err != nil {
				return nil, err
			}
			rec, err := res.Single(ctx)
			if err != nil {
				return nil, err
			}
			if st.byID != "" {
				if n, _ := rec.Values[0].(int64); int(n) < len(st.rows) {
					if err := runByID(ctx, t, st.byID, params[i]); err != nil {
						return nil, err
					}
				}
				continue
			}
			idx, _ := rec.Values[0].([]any)
			eid, _ := rec.Values[1].([]any)
			ids := params[i]["ids"].([]string)
			for j := range min(len(idx), len(eid)) {
				k, _ := idx[j].(int64)
				e, _ := eid[j].(string)
				if k >= 0 && int(k) < len(ids) {
					got = append(got, [2]string{ids[k], e})
				}
			}
		}
		return nil, nil
	})
	if err != nil || eids == nil {
		return err
	}
	eids.mu.Lock()
	defer eids.mu.Unlock()
	for _, p := range got {
		eids.m[p[0]] = p[1]
	}
	return nil
}

// runByID writes a statement's edges finding the endpoints by ID: the rare path, when
// an element ID went stale between the node and the edge transactions.
func runByID(ctx context.Context, t driver.ManagedTransaction, query string, params map[string]any) error {
	res, err := t.Run(ctx, query, params)
	if err != nil {
		return err
	}
	_, err = res.Consume(ctx)
	return err
}
