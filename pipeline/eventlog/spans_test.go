package eventlog

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/span"
)

func testSettlements(t *testing.T, open openFunc) {
	s := open(t, Options{})
	ctx := context.Background()
	ms := int64(1_000_000)
	spans := []span.Span{
		// Settlement 4821: root 0..300 ms and a child 10..290 ms.
		{TraceID: "t1", SpanID: "a", Name: "settlement.process", Service: "svc", Host: "h", PID: 7, TID: 8,
			StartNs: t0, EndNs: t0 + 300*ms, Attrs: map[string]string{"settlement.id": "4821"}},
		{TraceID: "t1", SpanID: "b", ParentID: "a", Name: "ledger.write", Service: "svc", Host: "h", PID: 7, TID: 8,
			StartNs: t0 + 10*ms, EndNs: t0 + 290*ms, Attrs: map[string]string{"settlement.id": "4821"}},
		// Settlement 4820: 8 ms.
		{TraceID: "t0", SpanID: "c", Name: "settlement.process", Service: "svc", Host: "h", PID: 7, TID: 8,
			StartNs: t0 - 20*ms, EndNs: t0 - 12*ms, Attrs: map[string]string{"settlement.id": "4820"}},
		// Not a settlement.
		{TraceID: "t2", SpanID: "d", Name: "health", Service: "svc", Host: "h", PID: 7, StartNs: t0, EndNs: t0 + 900*ms},
	}
	for i := 0; i < 2; i++ { // the second insert must change nothing
		if err := s.InsertSpans(ctx, spans); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Settlements(ctx, SettlementQuery{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	want := []Settlement{
		{ID: "4821", TraceID: "t1", StartNs: t0, EndNs: t0 + 300*ms, Service: "svc", Host: "h", PID: 7, Spans: 2},
		{ID: "4820", TraceID: "t0", StartNs: t0 - 20*ms, EndNs: t0 - 12*ms, Service: "svc", Host: "h", PID: 7, Spans: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settlements (-want +got):\n%s", diff)
	}
	got, err = s.Settlements(ctx, SettlementQuery{From: t0, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "4821" {
		t.Errorf("settlements from t0 = %+v, want only 4821", got)
	}
}
