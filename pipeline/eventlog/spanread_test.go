package eventlog

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/span"
)

func testSpans(t *testing.T, open openFunc) {
	s := open(t, Options{})
	ctx := context.Background()
	ms := int64(1_000_000)
	root := span.Span{TraceID: "t1", SpanID: "a", Name: "settlement.process", Service: "svc", Host: "h", PID: 7, TID: 8,
		StartNs: t0, EndNs: t0 + 300*ms, Status: span.StatusOK, Attrs: map[string]string{"settlement.id": "4821"}}
	child := span.Span{TraceID: "t1", SpanID: "b", ParentID: "a", Name: "ledger.write", Service: "svc", Host: "h", PID: 7, TID: 8,
		StartNs: t0 + 10*ms, EndNs: t0 + 290*ms, Status: span.StatusError, Attrs: map[string]string{"payment.id": "PAY-1"}}
	other := span.Span{TraceID: "t2", SpanID: "c", Name: "settlement.process", Service: "svc", Host: "h", PID: 7, TID: 8,
		StartNs: t0 - 20*ms, EndNs: t0 - 12*ms, Attrs: map[string]string{"settlement.id": "4820"}}
	for range 2 { // the second insert must change nothing
		if err := s.InsertSpans(ctx, []span.Span{child, other, root}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		q    SpanQuery
		want []span.Span
	}{
		{"a trace, by start", SpanQuery{TraceID: "t1"}, []span.Span{root, child}},
		{"an attribute value", SpanQuery{AttrKey: "settlement.id", AttrValue: "4821"}, []span.Span{root}},
		{"both", SpanQuery{TraceID: "t2", AttrKey: "settlement.id", AttrValue: "4820"}, []span.Span{other}},
		{"limit", SpanQuery{TraceID: "t1", Limit: 1}, []span.Span{root}},
		{"unknown trace", SpanQuery{TraceID: "t9"}, nil},
		{"unknown value", SpanQuery{AttrKey: "settlement.id", AttrValue: "1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Spans(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Spans(%+v) (-want +got):\n%s", tc.q, diff)
			}
		})
	}
	if _, err := s.Spans(ctx, SpanQuery{}); err == nil {
		t.Error("Spans with no trace and no attribute succeeded")
	}
	for _, h := range hostile {
		if got, err := s.Spans(ctx, SpanQuery{TraceID: h, AttrKey: h, AttrValue: h}); err != nil || len(got) != 0 {
			t.Errorf("hostile value %q: %v, %v", h, got, err)
		}
	}
}
