package investigate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/span"
)

const (
	ms = int64(1_000_000)
	t0 = int64(1_800_000_000_000_000_000)
)

// memLog is an event log in memory: settlement 4821 spends 30ms in one write to the
// ledger and 10ms preempted by a batch job.
type memLog struct {
	spans     []span.Span
	events    []event.Event
	spanCalls int
}

func incidentLog() *memLog {
	trace := "4bf92f3577b34da6a3ce929d0e0e4736"
	l := &memLog{spans: []span.Span{
		{TraceID: trace, SpanID: "w1", Name: "clearing.window", Host: "n1", PID: 100, TID: 101, StartNs: t0 - ms, EndNs: t0 + 60*ms,
			Attrs: map[string]string{"clearing.window": "CW-1"}},
		{TraceID: trace, SpanID: "s1", ParentID: "w1", Name: "settlement.process", Service: "settlement-svc", Host: "n1", PID: 100, TID: 101,
			StartNs: t0, EndNs: t0 + 50*ms, Attrs: map[string]string{"settlement.id": "4821"}},
		{TraceID: trace, SpanID: "l1", ParentID: "s1", Name: "ledger.write", Host: "n1", PID: 100, TID: 101,
			StartNs: t0 + 5*ms, EndNs: t0 + 40*ms},
	}}
	base := event.Event{Node: "n1", PID: 100, TID: 101, Comm: "settlement-svc", TraceID: trace, SpanID: "l1"}
	w := base
	w.ID, w.Type, w.TsNs, w.DurNs, w.FD, w.Dev, w.Ino, w.Bytes, w.Syscall = 7, event.TypeWrite, t0+6*ms, uint64(30*ms), 5, 0xfe00, 42, 262144, "pwrite64"
	p := base
	p.ID, p.Type, p.TsNs, p.DurNs, p.Preempted, p.RunqDelayNs, p.NextPID, p.NextComm = 8, event.TypeSchedSwitch, t0+41*ms, uint64(5*ms), true, uint64(5*ms), 900, "batch"
	l.events = []event.Event{w, p}
	return l
}

func (l *memLog) Spans(_ context.Context, q eventlog.SpanQuery) ([]span.Span, error) {
	l.spanCalls++
	var out []span.Span
	for _, s := range l.spans {
		if (q.TraceID == "" || s.TraceID == q.TraceID) && (q.AttrKey == "" || s.Attrs[q.AttrKey] == q.AttrValue) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (l *memLog) Events(_ context.Context, q eventlog.Query) ([]event.Event, error) {
	var out []event.Event
	for _, e := range l.events {
		if e.TsNs >= q.From && e.TsNs < q.To && (q.Limit == 0 || len(out) < q.Limit) {
			out = append(out, e)
		}
	}
	return out, nil
}

// oneGraph is a causal.Reader over what BuildGraph drew (the stores' own contract suite
// covers real traversal).
type oneGraph struct {
	g     causal.Graph
	fail  error
	reads int
}

func (o *oneGraph) node(id string) (causal.Node, bool) {
	for _, n := range o.g.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return causal.Node{}, false
}

func (o *oneGraph) Causes(_ context.Context, root string, _ int) ([]causal.Path, error) {
	var out []causal.Path
	r, _ := o.node(root)
	for _, e := range o.g.Edges {
		if e.From == root && e.Type == causal.EdgeCausedBy {
			n, _ := o.node(e.To)
			out = append(out, causal.Path{Nodes: []causal.Node{r, n}, Edges: []causal.Edge{e}})
		}
	}
	return out, nil
}

func (o *oneGraph) Subgraph(_ context.Context, root string, _ int) (causal.Graph, error) {
	o.reads++
	if o.fail != nil {
		return causal.Graph{}, o.fail
	}
	n, ok := o.node(root)
	if !ok {
		return causal.Graph{}, causal.ErrNotFound
	}
	return causal.Graph{Nodes: []causal.Node{n}}, nil
}

func TestChainOnDemand(t *testing.T) {
	ch, err := Chains{Log: incidentLog()}.Chain(context.Background(), Ref{Kind: KindSettlement, ID: "4821"})
	if err != nil {
		t.Fatal(err)
	}
	wantSubject := Subject{Kind: "settlement", ID: "4821", StartNs: t0, DurationNs: 50 * ms, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736",
		Service: "settlement-svc", Node: "n1", PID: 100, Comm: "settlement-svc", Spans: 2, Events: 2}
	if diff := cmp.Diff(wantSubject, ch.Subject); diff != "" {
		t.Errorf("subject (-want +got):\n%s", diff)
	}
	var kinds []string
	var sum int64
	for i, c := range ch.Causes {
		kinds = append(kinds, c.Kind)
		sum += c.ExplainedNs
		if c.Rank != i+1 || c.WhatIfNs != 50*ms-c.ExplainedNs {
			t.Errorf("cause %d: rank %d what-if %d", i, c.Rank, c.WhatIfNs)
		}
	}
	if diff := cmp.Diff([]string{CauseStorage, CauseUnexplained, CauseCPUContention}, kinds); diff != "" {
		t.Errorf("cause kinds (-want +got):\n%s", diff)
	}
	top := ch.Causes[0]
	if top.ExplainedNs != 30*ms || top.Resource != "file dev 254:0 inode 42" || top.Process.PID != 100 ||
		!slices.Contains(top.Evidence, "7") || top.Path[0].Name != "ledger.write" || sum != 50*ms {
		t.Errorf("top cause %+v (sum of causes %d)", top, sum)
	}
	if ch.Causes[2].Process == nil || ch.Causes[2].Process.Comm != "batch" {
		t.Errorf("cpu cause names %+v, want the batch job", ch.Causes[2].Process)
	}
	// The JSON contract scripts rely on.
	b, _ := json.Marshal(ch)
	for _, k := range []string{`"subject":{"kind":"settlement","id":"4821"`, `"duration_ns":50000000`, `"causes":[{"rank":1,"kind":"storage"`,
		`"explained_ns":30000000`, `"share":0.6`, `"what_if_ns":20000000`, `"process":{"node":"n1","pid":100`, `"evidence":["7"]`, `"path":[{"kind":"span"`} {
		if !bytes.Contains(b, []byte(k)) {
			t.Errorf("JSON lacks %s:\n%s", k, b)
		}
	}
}

func TestChainFromGraphFirst(t *testing.T) {
	log := incidentLog()
	onDemand, err := Chains{Log: log}.Chain(context.Background(), Ref{Kind: KindSettlement, ID: "4821"})
	if err != nil {
		t.Fatal(err)
	}
	// The graph holds what the engine drew; the log is not read at all.
	idx := causal.NewIndex()
	idx.Add(log.events)
	r := causal.Analyze(idx, causal.Subject{Object: causal.Object{Label: causal.LabelSettlement, Kind: "settlement", ID: "4821"}, Spans: log.spans[1:]})
	g := &oneGraph{g: causal.BuildGraph(r, causal.DefaultMapping())}
	log.spanCalls = 0
	fromGraph, err := Chains{Graph: g, Log: log}.Chain(context.Background(), Ref{Kind: KindSettlement, ID: "4821"})
	if err != nil {
		t.Fatal(err)
	}
	if log.spanCalls != 0 || g.reads == 0 {
		t.Errorf("span reads %d, graph reads %d: a chain the graph holds is read from it", log.spanCalls, g.reads)
	}
	if diff := cmp.Diff(onDemand, fromGraph); diff != "" {
		t.Errorf("graph and on-demand chains differ (-on demand +graph):\n%s", diff)
	}
	// Not in the graph (drawn before the engine ran, or the write failed): on demand.
	empty := &oneGraph{}
	got, err := Chains{Graph: empty, Log: log}.Chain(context.Background(), Ref{Kind: KindSettlement, ID: "4821"})
	if err != nil || got.Causes[0].Kind != CauseStorage || log.spanCalls == 0 {
		t.Errorf("fallback: %v, %+v", err, got.Causes)
	}
	// The graph store down: on demand too.
	down := &oneGraph{fail: errors.New("connection refused")}
	if _, err := (Chains{Graph: down, Log: log}).Chain(context.Background(), Ref{Kind: KindSettlement, ID: "4821"}); err != nil {
		t.Errorf("graph store down: %v, want the on-demand chain", err)
	}
}

func TestChainErrors(t *testing.T) {
	log := incidentLog()
	tests := []struct {
		name  string
		c     Chains
		ref   Ref
		is    error
		words string
	}{
		{"unknown settlement", Chains{Log: log}, Ref{Kind: KindSettlement, ID: "404"}, ErrNotFound, "settlement 404"},
		{"unknown settlement, graph only", Chains{Graph: &oneGraph{}}, Ref{Kind: KindSettlement, ID: "404"}, ErrNotFound, "settlement 404"},
		{"unknown trace", Chains{Log: log}, Ref{TraceID: "ffff"}, ErrNotFound, "trace ffff"},
		{"unknown kind", Chains{Log: log}, Ref{Kind: "invoice", ID: "1"}, ErrInvalid, `unknown kind "invoice"`},
		{"nothing asked", Chains{Log: log}, Ref{}, ErrInvalid, "give a kind"},
		{"no stores", Chains{}, Ref{Kind: KindSettlement, ID: "1"}, ErrInvalid, "no causal graph and no event log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.c.Chain(context.Background(), tt.ref)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.words) {
				t.Errorf("error %v, want %v naming %q", err, tt.is, tt.words)
			}
		})
	}
}

// A trace ID leads to the business object at the trace's root: here the clearing window
// that the settlement was submitted in.
func TestChainByTrace(t *testing.T) {
	ch, err := Chains{Log: incidentLog()}.Chain(context.Background(), Ref{TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Subject.Kind != KindClearingWindow || ch.Subject.ID != "CW-1" || ch.Subject.DurationNs != 61*ms || ch.Causes[0].Kind != CauseStorage {
		t.Errorf("chain of the trace: %+v", ch)
	}
}

func TestWriteChainText(t *testing.T) {
	ch, err := Chains{Log: incidentLog()}.Chain(context.Background(), Ref{Kind: KindSettlement, ID: "4821"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteChainText(&b, ch); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"settlement 4821  50.0 ms  (settlement-svc pid 100 on n1", "#1 storage", "30.0 ms", "60 %",
		"what if: 20.0 ms", "in I/O on file dev 254:0 inode 42", "path: span ledger.write [35.0 ms] -> file dev 254:0 inode 42 [30.0 ms]",
		"#3 cpu_contention", "batch (pid 900 on n1)", "evidence: 1 event, e.g. 7"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
	var md bytes.Buffer
	WriteChainMarkdown(&md, ch)
	if !strings.Contains(md.String(), "settlement 4821 took 50.0 ms") || !strings.Contains(md.String(), "| storage ") {
		t.Errorf("markdown:\n%s", md.String())
	}
}
