package causal

import (
	"context"
	"errors"
)

// This file is the contract between the causal engine, the graph stores that keep what it
// draws (pipeline/graphstore/...) and the use cases that read chains back. Stores are
// generic: they know nodes, edges and paths, not settlements.

// Node labels. Business labels come from the business-mapping configuration (a firm may add
// its own, e.g. NettingRun); the others are fixed.
const (
	LabelSettlement     = "Settlement"
	LabelPayment        = "Payment"
	LabelClearingWindow = "ClearingWindow"
	LabelOrderBookOp    = "OrderBookOp"
	LabelSpan           = "Span"
	LabelCause          = "Cause"   // one kernel cause of delay (aggregated evidence)
	LabelProcess        = "Process" // node + pid
	LabelThread         = "Thread"
	LabelFile           = "File"   // dev + inode (path where known)
	LabelSocket         = "Socket" // 4-tuple
	LabelCPU            = "CPU"    // node + cpu number
)

// Node is one vertex. ID is stable and unique across the whole graph (e.g.
// "settlement/4821", "span/<trace>/<span>", "process/<node>/<pid>"), so re-writing the
// same node merges it.
type Node struct {
	ID    string
	Label string
	Props map[string]string
}

// Edge is one directed relationship, From delays or contains To. Writing the same
// (From, To, Type) again replaces it.
type Edge struct {
	From, To string
	Type     string // e.g. HAS_SPAN, CHILD_OF, CAUSED_BY, HELD_BY, ON_RESOURCE
	// ExplainedNs is the latency this edge explains (0 for structural edges).
	ExplainedNs int64
	Rule        string
	// Confidence in 0..1 and Join say how the events behind the edge were tied to the
	// span: tid exact, pid only, 4-tuple match, time overlap only.
	Confidence float64
	Join       string
	Evidence   []uint64 // event IDs
}

// Graph is a batch of nodes and edges, typically what the engine drew for one subject.
type Graph struct {
	Nodes []Node
	Edges []Edge
}

// Path is one walk from a root node down to a cause, nodes and edges in order
// (len(Nodes) == len(Edges)+1).
type Path struct {
	Nodes []Node
	Edges []Edge
}

// Writer keeps graphs; writes are idempotent (re-reading a topic never duplicates).
type Writer interface {
	Write(ctx context.Context, g Graph) error
}

// ErrNotFound is returned (wrapped) by a Reader asked about a root node it does not hold, so
// that "unknown settlement" and "a settlement with no causes" read differently.
var ErrNotFound = errors.New("no such node in the causal graph")

// MaxCauseDepth is how many hops Causes follows from its root. Stores walk outgoing edges
// only and never visit a node twice on one path, so cycles end; the engine keeps its chains
// (business object → spans → causes → deeper causes) within this many hops.
const MaxCauseDepth = 8

// Reader answers the two questions the use cases ask of a graph store. Both return
// ErrNotFound when root is not in the graph.
type Reader interface {
	// Causes returns the paths from root down to nodes labelled LabelCause, ranked by the
	// ExplainedNs of their last edge, largest first, at most limit (0: all). Ties rank
	// the shorter path first, then the path whose node IDs sort first. Paths are simple
	// (no node twice) and at most MaxCauseDepth edges long; they may pass through other
	// Cause nodes (a cause of a cause).
	Causes(ctx context.Context, rootID string, limit int) ([]Path, error)
	// Subgraph returns everything reachable from root within maxDepth hops, for display:
	// those nodes and every edge between two of them, nodes ordered by ID and edges by
	// (From, To, Type).
	Subgraph(ctx context.Context, rootID string, maxDepth int) (Graph, error)
}
