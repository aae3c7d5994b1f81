package neo4j

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"

	driver "github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/graphstore"
)

// causesQuery walks outgoing edges up to MaxCauseDepth hops to Cause nodes. Neo4j's
// variable-length match only keeps relationships distinct; the WHERE keeps paths simple,
// as the contract (and the embedded store) has them. The ORDER BY is the contract's
// ranking (graphstore.ComparePaths), so LIMIT keeps the right ones.
var causesQuery = `MATCH (r:KprobeNode {_id: $root})
OPTIONAL MATCH p = (r)-[*1..` + strconv.Itoa(causal.MaxCauseDepth) + `]->(c:Cause)
WHERE all(i IN range(1, length(p)) WHERE NOT nodes(p)[i] IN nodes(p)[0..i])
WITH p ORDER BY last(relationships(p)).explained_ns DESC, length(p), [n IN nodes(p) | n._id]
LIMIT $limit
RETURN [n IN nodes(p) | n {.*}] AS nodes,
       [e IN relationships(p) | e {.*, _from: startNode(e)._id, _to: endNode(e)._id, _type: type(e)}] AS edges`

// Subgraph walks breadth-first, one round trip per level, with these two queries: a
// variable-length match cannot take its depth as a parameter, and enumerating paths
// to find nodes is exponential where a level-by-level walk is linear.
const (
	rootQuery  = `MATCH (n:KprobeNode {_id: $root}) RETURN n {.*} AS n`
	levelQuery = `UNWIND $ids AS id
MATCH (:KprobeNode {_id: id})-[e]->(b)
RETURN id AS from, e {.*, _type: type(e)} AS e, b {.*} AS b`
)

// Causes implements causal.Reader.
func (s *Store) Causes(ctx context.Context, rootID string, limit int) ([]causal.Path, error) {
	if limit <= 0 {
		limit = math.MaxInt64
	}
	sess := s.session(ctx, driver.AccessModeRead)
	defer sess.Close(context.WithoutCancel(ctx))
	out, err := sess.ExecuteRead(ctx, func(t driver.ManagedTransaction) (any, error) {
		res, err := t.Run(ctx, causesQuery, map[string]any{"root": rootID, "limit": limit})
		if err != nil {
			return nil, err
		}
		recs, err := res.Collect(ctx)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			return nil, fmt.Errorf("causes of %q: %w", rootID, causal.ErrNotFound)
		}
		var paths []causal.Path
		for _, rec := range recs {
			ns, _ := rec.Values[0].([]any)
			es, _ := rec.Values[1].([]any)
			if len(ns) == 0 { // the root has no causes: one row, p null
				continue
			}
			p := causal.Path{Nodes: make([]causal.Node, len(ns)), Edges: make([]causal.Edge, len(es))}
			for i, n := range ns {
				p.Nodes[i] = toNode(n)
			}
			for i, e := range es {
				m, _ := e.(map[string]any)
				p.Edges[i] = toEdge(str(m["_from"]), str(m["_to"]), m)
			}
			paths = append(paths, p)
		}
		// Already in this order; sorting again settles string-order differences between
		// Java and Go so both stores agree to the byte.
		slices.SortStableFunc(paths, graphstore.ComparePaths)
		return paths, nil
	})
	if err != nil {
		return nil, err
	}
	paths, _ := out.([]causal.Path)
	return paths, nil
}

// Subgraph implements causal.Reader.
func (s *Store) Subgraph(ctx context.Context, rootID string, maxDepth int) (causal.Graph, error) {
	if maxDepth < 0 {
		return causal.Graph{}, fmt.Errorf("subgraph of %q: negative depth %d", rootID, maxDepth)
	}
	sess := s.session(ctx, driver.AccessModeRead)
	defer sess.Close(context.WithoutCancel(ctx))
	out, err := sess.ExecuteRead(ctx, func(t driver.ManagedTransaction) (any, error) {
		return walk(ctx, t, rootID, maxDepth)
	})
	if err != nil {
		return causal.Graph{}, err
	}
	return out.(causal.Graph), nil
}

func walk(ctx context.Context, t driver.ManagedTransaction, rootID string, maxDepth int) (causal.Graph, error) {
	res, err := t.Run(ctx, rootQuery, map[string]any{"root": rootID})
	if err != nil {
		return causal.Graph{}, err
	}
	rec, err := res.Single(ctx)
	if err != nil {
		if driver.IsUsageError(err) { // no record
			return causal.Graph{}, fmt.Errorf("subgraph of %q: %w", rootID, causal.ErrNotFound)
		}
		return causal.Graph{}, err
	}
	seen := map[string]causal.Node{rootID: toNode(rec.Values[0])}
	var edges []causal.Edge
	frontier := []any{rootID}
	for depth := 0; len(frontier) > 0 && depth <= maxDepth; depth++ {
		res, err := t.Run(ctx, levelQuery, map[string]any{"ids": frontier})
		if err != nil {
			return causal.Graph{}, err
		}
		frontier = nil
		for res.Next(ctx) {
			v := res.Record().Values
			to := toNode(v[2])
			if _, ok := seen[to.ID]; !ok {
				if depth == maxDepth { // beyond the last level: only edges within the set
					continue
				}
				seen[to.ID] = to
				frontier = append(frontier, to.ID)
			}
			m, _ := v[1].(map[string]any)
			edges = append(edges, toEdge(str(v[0]), to.ID, m))
		}
		if err := res.Err(); err != nil {
			return causal.Graph{}, err
		}
	}
	g := causal.Graph{Edges: edges}
	for _, n := range seen {
		g.Nodes = append(g.Nodes, n)
	}
	slices.SortFunc(g.Nodes, graphstore.CompareNodes)
	slices.SortFunc(g.Edges, graphstore.CompareEdges)
	return g, nil
}

// toNode reads a node map projection: _id and _label are the store's, the rest are Props.
func toNode(v any) causal.Node {
	m, _ := v.(map[string]any)
	n := causal.Node{ID: str(m["_id"]), Label: str(m["_label"])}
	for k, v := range m {
		if k == "_id" || k == "_label" {
			continue
		}
		if s, ok := v.(string); ok {
			if n.Props == nil {
				n.Props = make(map[string]string, len(m))
			}
			n.Props[k] = s
		}
	}
	return n
}

func toEdge(from, to string, m map[string]any) causal.Edge {
	e := causal.Edge{From: from, To: to, Type: str(m["_type"]), Rule: str(m["rule"]), Join: str(m["join"])}
	e.ExplainedNs, _ = m["explained_ns"].(int64)
	e.Confidence, _ = m["confidence"].(float64)
	if ev, ok := m["evidence"].([]any); ok && len(ev) > 0 {
		e.Evidence = make([]uint64, len(ev))
		for i, x := range ev {
			id, _ := x.(int64)
			e.Evidence[i] = uint64(id)
		}
	}
	return e
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
