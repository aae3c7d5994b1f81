package causal

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

const (
	us = int64(1000)
	ms = 1000 * us
	t0 = int64(1_800_000_000_000_000_000)
)

// world builds kernel events the way the recorder reports them, thread by thread.
type world struct {
	node   string
	evs    []event.Event
	nextID uint64
}

func newWorld() *world { return &world{node: "n1", nextID: 1} }

// thread is one recorded thread with a clock: each helper appends what the thread did
// next and moves the clock past it.
type thread struct {
	w        *world
	pid, tid uint32
	comm     string
	cpu      uint32
	t        int64
	spanID   string
	traceID  string
}

func (w *world) thread(pid, tid uint32, comm string, at int64) *thread {
	return &thread{w: w, pid: pid, tid: tid, comm: comm, t: at}
}

func (th *thread) emit(e event.Event) *event.Event {
	e.ID = th.w.nextID
	th.w.nextID++
	e.Node, e.PID, e.TID, e.Comm, e.CPU = th.w.node, th.pid, th.tid, th.comm, th.cpu
	e.TraceID, e.SpanID = th.traceID, th.spanID
	if e.FD == 0 {
		e.FD = -1
	}
	th.w.evs = append(th.w.evs, e)
	return &th.w.evs[len(th.w.evs)-1]
}

// run: on CPU for d.
func (th *thread) run(d int64) { th.t += d }

// preempted: runnable but switched out for d while next ran.
func (th *thread) preempted(d int64, next uint32, nextComm string) {
	th.emit(event.Event{Type: event.TypeSchedSwitch, TsNs: th.t, DurNs: uint64(d), Preempted: true,
		RunqDelayNs: uint64(d), NextPID: next, NextTID: next, NextComm: nextComm})
	th.t += d
}

// blocked: off CPU for d, woken by waker (0: not reported), then runq waiting for a CPU.
func (th *thread) blocked(d, runq int64, wakerPID, wakerTID uint32) *event.Event {
	e := th.emit(event.Event{Type: event.TypeSchedSwitch, TsNs: th.t, DurNs: uint64(d), RunqDelayNs: uint64(runq),
		WakerPID: wakerPID, WakerTID: wakerTID, NextComm: "swapper/0"})
	th.t += d
	return e
}

// write: a write syscall on a file lasting d, with inside (relative to its start) whatever
// the callback does to the thread (blocks).
func (th *thread) write(dev, ino uint64, bytes int64, d int64, inside func()) {
	start := th.t
	e := th.emit(event.Event{Type: event.TypeWrite, Syscall: "pwrite64", TsNs: start, FD: 7, Dev: dev, Ino: ino, Bytes: bytes})
	idx := len(th.w.evs) - 1
	if inside != nil {
		inside()
	}
	th.t = max(th.t, start+d)
	_ = e
	th.w.evs[idx].DurNs = uint64(th.t - start)
}

// send/recv: the fallback tcp events (dur 0) inside a write/read on a socket.
func (th *thread) send(u Tuple, bytes int64) {
	th.emit(event.Event{Type: event.TypeWrite, Syscall: "write", TsNs: th.t, DurNs: uint64(5 * us), FD: 9, Dev: 9, Ino: 1000 + uint64(u.Local.Port()), Bytes: bytes})
	th.tcp(event.TypeTCPSend, u, bytes, th.t+2*us, 0)
	th.t += 5 * us
}

func (th *thread) recv(u Tuple, bytes int64) {
	th.emit(event.Event{Type: event.TypeRead, Syscall: "read", TsNs: th.t, DurNs: uint64(5 * us), FD: 9, Dev: 9, Ino: 1000 + uint64(u.Local.Port()), Bytes: bytes})
	th.tcp(event.TypeTCPRecv, u, bytes, th.t+3*us, 0)
	th.t += 5 * us
}

// recvAgain: a non-blocking read that found nothing (EAGAIN).
func (th *thread) recvAgain(u Tuple) {
	th.emit(event.Event{Type: event.TypeRead, Syscall: "read", TsNs: th.t, DurNs: uint64(2 * us), FD: 9, Dev: 9, Ino: 1000 + uint64(u.Local.Port()), Errno: 11})
	th.tcp(event.TypeTCPRecv, u, 0, th.t+1*us, 11)
	th.t += 2 * us
}

func (th *thread) tcp(typ event.Type, u Tuple, bytes int64, at int64, errno int32) {
	th.emit(event.Event{Type: typ, TsNs: at, SAddr: u.Local.Addr(), SPort: u.Local.Port(),
		DAddr: u.Remote.Addr(), DPort: u.Remote.Port(), Bytes: bytes, Errno: errno})
}

func (th *thread) fault() {
	th.emit(event.Event{Type: event.TypePageFault, TsNs: th.t, Addr: 0x7f0000000000 + uint64(th.t%1e9), ErrorCode: 6})
}

func tuple(local, remote string) Tuple {
	return Tuple{Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote)}
}

func (w *world) index() *Index {
	x := NewIndex()
	x.Add(w.evs)
	return x
}

// settlement is a one-span subject on th from start to th's clock now.
func settlement(th *thread, id string, start int64) Subject {
	s := span.Span{TraceID: "t" + id, SpanID: "s" + id, Name: "settlement.process", Service: "settlement-svc",
		Host: th.w.node, PID: th.pid, TID: th.tid, StartNs: start, EndNs: th.t, Attrs: map[string]string{"settlement.id": id}}
	return Subject{Object: Object{Label: LabelSettlement, Kind: "settlement", ID: id}, Spans: []span.Span{s}}
}

// memGraph is an in-memory Writer and Reader with the semantics of the graph contract,
// for testing the engine before (and independently of) the real stores.
type memGraph struct {
	mu     sync.Mutex
	nodes  map[string]Node
	edges  map[[3]string]Edge
	writes int
}

func newMemGraph() *memGraph {
	return &memGraph{nodes: map[string]Node{}, edges: map[[3]string]Edge{}}
}

func (g *memGraph) Write(_ context.Context, gr Graph) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.writes++
	for _, n := range gr.Nodes {
		old, ok := g.nodes[n.ID]
		props := map[string]string{}
		if ok {
			for k, v := range old.Props {
				props[k] = v
			}
		}
		for k, v := range n.Props {
			props[k] = v
		}
		g.nodes[n.ID] = Node{ID: n.ID, Label: n.Label, Props: props}
	}
	for _, e := range gr.Edges {
		g.edges[[3]string{e.From, e.To, e.Type}] = e
	}
	return nil
}

func (g *memGraph) out(id string) []Edge {
	var out []Edge
	for _, e := range g.edges {
		if e.From == id {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Edge) int { return cmp.Or(strings.Compare(a.To, b.To), strings.Compare(a.Type, b.Type)) })
	return out
}

func (g *memGraph) Causes(_ context.Context, root string, limit int) ([]Path, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.nodes[root]; !ok {
		return nil, ErrNotFound
	}
	var paths []Path
	var walk func(p Path, seen map[string]bool)
	walk = func(p Path, seen map[string]bool) {
		last := p.Nodes[len(p.Nodes)-1]
		if len(p.Edges) > 0 && last.Label == LabelCause {
			paths = append(paths, Path{Nodes: slices.Clone(p.Nodes), Edges: slices.Clone(p.Edges)})
		}
		if len(p.Edges) >= MaxCauseDepth {
			return
		}
		for _, e := range g.out(last.ID) {
			if seen[e.To] {
				continue
			}
			seen[e.To] = true
			walk(Path{Nodes: append(p.Nodes, g.nodes[e.To]), Edges: append(p.Edges, e)}, seen)
			delete(seen, e.To)
		}
	}
	walk(Path{Nodes: []Node{g.nodes[root]}}, map[string]bool{root: true})
	slices.SortStableFunc(paths, func(a, b Path) int {
		return cmp.Or(cmp.Compare(b.Edges[len(b.Edges)-1].ExplainedNs, a.Edges[len(a.Edges)-1].ExplainedNs), cmp.Compare(len(a.Nodes), len(b.Nodes)))
	})
	if limit > 0 && len(paths) > limit {
		paths = paths[:limit]
	}
	return paths, nil
}

func (g *memGraph) Subgraph(_ context.Context, root string, depth int) (Graph, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.nodes[root]; !ok {
		return Graph{}, ErrNotFound
	}
	seen := map[string]bool{root: true}
	frontier := []string{root}
	for d := 0; d < depth; d++ {
		var next []string
		for _, id := range frontier {
			for _, e := range g.out(id) {
				if !seen[e.To] {
					seen[e.To] = true
					next = append(next, e.To)
				}
			}
		}
		frontier = next
	}
	var out Graph
	for id := range seen {
		out.Nodes = append(out.Nodes, g.nodes[id])
	}
	for _, e := range g.edges {
		if seen[e.From] && seen[e.To] {
			out.Edges = append(out.Edges, e)
		}
	}
	return out, nil
}

// top returns the subject's causes without the remainder, largest first.
func topCause(t *testing.T, r Result) Cause {
	t.Helper()
	if len(r.Causes) == 0 {
		t.Fatalf("no causes for %s", r.Object.NodeID())
	}
	return r.Causes[0]
}

// checkSharesAddUp: every ns of the subject is explained once.
func checkSharesAddUp(t *testing.T, r Result) {
	t.Helper()
	var sum int64
	var share float64
	for _, c := range r.Causes {
		sum += c.ExplainedNs
		share += c.Share
		if c.WhatIfNs != r.DurationNs-c.ExplainedNs {
			t.Errorf("%s: what-if %d, want duration %d - explained %d", c.Key, c.WhatIfNs, r.DurationNs, c.ExplainedNs)
		}
		if c.Confidence < 0 || c.Confidence > 1 {
			t.Errorf("%s: confidence %v outside 0..1", c.Key, c.Confidence)
		}
	}
	if sum != r.DurationNs {
		t.Errorf("causes explain %d ns of %d", sum, r.DurationNs)
	}
	if share < 0.999 || share > 1.001 {
		t.Errorf("shares add up to %v, want 1", share)
	}
	if !slices.ContainsFunc(r.Causes, func(c Cause) bool { return c.Kind == KindUnexplained }) {
		t.Errorf("no unexplained remainder among %d causes", len(r.Causes))
	}
}
