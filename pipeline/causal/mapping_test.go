package causal

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/span"
)

func TestDefaultMapping(t *testing.T) {
	m := DefaultMapping()
	sp := func(name string, attrs map[string]string) *span.Span { return &span.Span{Name: name, Attrs: attrs} }
	tests := []struct {
		span *span.Span
		want []Object
	}{
		{sp("settlement.process", map[string]string{"settlement.id": "4821", "payment.count": "4"}), []Object{{LabelSettlement, "settlement", "4821"}}},
		{sp("payment.validate", map[string]string{"payment.id": "PAY-1"}), []Object{{LabelPayment, "payment", "PAY-1"}}},
		{sp("anything", map[string]string{"clearing.window": "CW-1", "order.id": "O-9"}),
			[]Object{{LabelClearingWindow, "clearing_window", "CW-1"}, {LabelOrderBookOp, "order_book_op", "O-9"}}},
		{sp("settlement.process", map[string]string{"settlement.id": ""}), nil},
		{sp("http GET", nil), nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, m.Objects(tt.span)); diff != "" {
			t.Errorf("%s %v (-want +got):\n%s", tt.span.Name, tt.span.Attrs, diff)
		}
	}
	if diff := cmp.Diff([]string{"settlement", "payment", "clearing_window", "order_book_op"}, m.Kinds()); diff != "" {
		t.Errorf("kinds (-want +got):\n%s", diff)
	}
}

// A firm adds its own concept, a netting run, by configuration alone: its spans become
// NettingRun objects with their own causal chains, and ingest keeps its attribute.
func TestFirmConceptByConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "business.toml")
	cfg := string(defaultMappingTOML) + `
[[concept]]
label      = "NettingRun"
kind       = "netting_run"
id_attr    = "netting.run.id"
span_names = ["netting.*"]
`
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := LoadMapping(file)
	if err != nil {
		t.Fatal(err)
	}
	if !(span.Business{Prefixes: m.Prefixes()}).Keep("netting.run.id") {
		t.Errorf("prefixes %v drop netting.run.id: ingest would lose the concept's ID", m.Prefixes())
	}
	if got := m.Objects(&span.Span{Name: "report.netting", Attrs: map[string]string{"netting.run.id": "N-7"}}); got != nil {
		t.Errorf("a span outside span_names became %v", got)
	}

	w := newWorld()
	svc := w.thread(100, 101, "netting-svc", t0)
	svc.traceID, svc.spanID = "tn", "sn"
	svc.run(1 * ms)
	svc.preempted(25*ms, 900, "batch")
	svc.run(1 * ms)
	svc.fault()
	run := span.Span{TraceID: "tn", SpanID: "sn", Name: "netting.run", Host: "n1", PID: 100, TID: 101,
		StartNs: t0, EndNs: svc.t, Attrs: map[string]string{"netting.run.id": "N-7"}}
	g := newMemGraph()
	e, stop := runEngine(t, EngineOptions{Writer: g, Mapping: m, Idle: 10 * time.Millisecond})
	ctx := context.Background()
	_ = e.AddSpans(ctx, []span.Span{run})
	_ = e.AddEvents(ctx, w.evs)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	r, err := ReadResult(ctx, g, "netting_run", "N-7")
	if err != nil {
		t.Fatal(err)
	}
	if r.Object.Label != "NettingRun" || r.DurationNs != 27*ms || r.Causes[0].Kind != KindCPU || r.Causes[0].Process.PID != 900 {
		t.Errorf("netting run N-7: %+v", r)
	}
}

func TestParseMappingErrors(t *testing.T) {
	tests := []struct{ name, toml, want string }{
		{"empty", ``, "no [[concept]]"},
		{"not toml", `[[concept]`, "parsing"},
		{"unknown key", "[[concept]]\nlabel='A'\nkind='a'\nid_attr='x'\ncolour='red'", `unknown key "concept.colour"`},
		{"bad label", "[[concept]]\nlabel='net run'\nkind='a'\nid_attr='x'", "CamelCase"},
		{"kprobe's label", "[[concept]]\nlabel='Span'\nkind='a'\nid_attr='x'", "kprobe's own"},
		{"bad kind", "[[concept]]\nlabel='A'\nkind='A-b'\nid_attr='x'", "lowercase"},
		{"twice", "[[concept]]\nlabel='A'\nkind='a'\nid_attr='x'\n[[concept]]\nlabel='B'\nkind='a'\nid_attr='y'", "given twice"},
		{"no id attr", "[[concept]]\nlabel='A'\nkind='a'", "id_attr is empty"},
		{"bad glob", "[[concept]]\nlabel='A'\nkind='a'\nid_attr='x'\nspan_names=['[']", "span_names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseMapping([]byte(tt.toml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := LoadMapping(filepath.Join(t.TempDir(), "missing.toml")); err == nil || !strings.Contains(err.Error(), "reading business mapping") {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzParseMapping(f *testing.F) {
	f.Add(string(defaultMappingTOML))
	f.Add("[[concept]]\nlabel='A'\nkind='a'\nid_attr='x'\nspan_names=['a*']")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMapping([]byte(s))
		if err != nil {
			return
		}
		// Whatever parses is usable: matching and prefixes never fail.
		_ = m.Objects(&span.Span{Name: "a", Attrs: map[string]string{"x": "1"}})
		_ = m.Prefixes()
	})
}

// What a graph store hands back is decoded without panicking, whatever it holds.
func FuzzCauseFromNode(f *testing.F) {
	f.Add(`[{"kind":"span","name":"settlement.process","duration_ns":5}]`, "12", "0.5")
	f.Add(`not json`, "x", "")
	f.Fuzz(func(t *testing.T, path, pid, share string) {
		n := Node{ID: "cause/x", Label: LabelCause, Props: map[string]string{PropPath: path, PropPID: pid, PropShare: share, PropKind: KindCPU}}
		c, err := causeFromNode(n, Edge{ExplainedNs: 1})
		if err == nil && c.Kind != KindCPU {
			t.Errorf("kind %q", c.Kind)
		}
	})
}
