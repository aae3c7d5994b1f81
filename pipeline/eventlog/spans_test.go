package eventlog

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

func testSpanGroups(t *testing.T, open openFunc) {
	s := open(t, Options{})
	ctx := context.Background()
	ms := int64(1_000_000)
	spans := []span.Span{
		// Settlement 4821: root 0..300 ms and a child 10..290 ms that failed.
		{TraceID: "t1", SpanID: "a", Name: "settlement.process", Service: "svc", Host: "h", PID: 7, TID: 8,
			StartNs: t0, EndNs: t0 + 300*ms, Status: span.StatusOK, Attrs: map[string]string{"settlement.id": "4821"}},
		{TraceID: "t1", SpanID: "b", ParentID: "a", Name: "ledger.write", Service: "ledger", Host: "h2", PID: 9, TID: 10,
			StartNs: t0 + 10*ms, EndNs: t0 + 290*ms, Status: span.StatusError,
			Attrs: map[string]string{"settlement.id": "4821", "payment.id": "PAY-1"}},
		// Settlement 4820: 8 ms, status unset.
		{TraceID: "t0", SpanID: "c", Name: "settlement.process", Service: "svc", Host: "h", PID: 7, TID: 8,
			StartNs: t0 - 20*ms, EndNs: t0 - 12*ms, Attrs: map[string]string{"settlement.id": "4820"}},
		// Payment PAY-2, alone: 50 ms.
		{TraceID: "t3", SpanID: "e", Name: "payment.accept", Service: "pay", Host: "h3", PID: 11,
			StartNs: t0 + 5*ms, EndNs: t0 + 55*ms, Status: span.StatusOK, Attrs: map[string]string{"payment.id": "PAY-2"}},
		// Not a business object.
		{TraceID: "t2", SpanID: "d", Name: "health", Service: "svc", Host: "h", PID: 7, StartNs: t0, EndNs: t0 + 900*ms},
	}
	for i := 0; i < 2; i++ { // the second insert must change nothing
		if err := s.InsertSpans(ctx, spans); err != nil {
			t.Fatal(err)
		}
	}
	s4821 := SpanGroup{Value: "4821", TraceID: "t1", StartNs: t0, EndNs: t0 + 300*ms, Service: "svc", Host: "h", PID: 7, Spans: 2, Errors: 1, OKs: 1}
	s4820 := SpanGroup{Value: "4820", TraceID: "t0", StartNs: t0 - 20*ms, EndNs: t0 - 12*ms, Service: "svc", Host: "h", PID: 7, Spans: 1}
	pay1 := SpanGroup{Value: "PAY-1", TraceID: "t1", StartNs: t0 + 10*ms, EndNs: t0 + 290*ms, Service: "ledger", Host: "h2", PID: 9, Spans: 1, Errors: 1}
	pay2 := SpanGroup{Value: "PAY-2", TraceID: "t3", StartNs: t0 + 5*ms, EndNs: t0 + 55*ms, Service: "pay", Host: "h3", PID: 11, Spans: 1, OKs: 1}
	for _, tc := range []struct {
		name string
		q    SpanGroupQuery
		want []SpanGroup
	}{
		{"slowest first", SpanGroupQuery{Key: "settlement.id", Limit: 5}, []SpanGroup{s4821, s4820}},
		{"no limit", SpanGroupQuery{Key: "settlement.id"}, []SpanGroup{s4821, s4820}},
		{"top 1", SpanGroupQuery{Key: "settlement.id", Limit: 1}, []SpanGroup{s4821}},
		{"from", SpanGroupQuery{Key: "settlement.id", From: t0}, []SpanGroup{s4821}},
		{"to", SpanGroupQuery{Key: "settlement.id", To: t0}, []SpanGroup{s4820}},
		{"failed", SpanGroupQuery{Key: "settlement.id", FailedOnly: true}, []SpanGroup{s4821}},
		{"one value", SpanGroupQuery{Key: "settlement.id", Value: "4820"}, []SpanGroup{s4820}},
		{"unknown value", SpanGroupQuery{Key: "settlement.id", Value: "1"}, nil},
		{"another key", SpanGroupQuery{Key: "payment.id"}, []SpanGroup{pay1, pay2}},
		{"another key failed", SpanGroupQuery{Key: "payment.id", FailedOnly: true}, []SpanGroup{pay1}},
		{"no such key", SpanGroupQuery{Key: "order.id"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.SpanGroups(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("SpanGroups(%+v) (-want +got):\n%s", tc.q, diff)
			}
		})
	}
	if _, err := s.SpanGroups(ctx, SpanGroupQuery{}); err == nil {
		t.Error("SpanGroups without a key succeeded")
	}
	for _, h := range hostile {
		if got, err := s.SpanGroups(ctx, SpanGroupQuery{Key: h, Value: h}); err != nil || len(got) != 0 {
			t.Errorf("hostile key %q: %v, %v", h, got, err)
		}
		if got, err := s.Spans(ctx, SpanQuery{TraceID: h, AttrKey: h, AttrValue: h}); err != nil || len(got) != 0 {
			t.Errorf("hostile span query %q: %v, %v", h, got, err)
		}
	}

	// Spans themselves, read back whole.
	byID := map[string]span.Span{}
	for _, sp := range spans {
		byID[sp.SpanID] = sp
	}
	pick := func(ids ...string) []span.Span {
		var out []span.Span
		for _, id := range ids {
			out = append(out, byID[id])
		}
		return out
	}
	for _, tc := range []struct {
		name string
		q    SpanQuery
		want []span.Span
	}{
		{"trace", SpanQuery{TraceID: "t1"}, pick("a", "b")},
		{"attribute value", SpanQuery{AttrKey: "settlement.id", AttrValue: "4821"}, pick("a", "b")},
		{"attribute key, by start", SpanQuery{AttrKey: "settlement.id"}, pick("c", "a", "b")},
		{"another key", SpanQuery{AttrKey: "payment.id"}, pick("e", "b")},
		{"window", SpanQuery{AttrKey: "settlement.id", From: t0, To: t0 + 10*ms}, pick("a")},
		{"limit", SpanQuery{AttrKey: "settlement.id", Limit: 2}, pick("c", "a")},
		{"none", SpanQuery{TraceID: "t9"}, nil},
	} {
		t.Run("Spans/"+tc.name, func(t *testing.T) {
			got, err := s.Spans(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Spans(%+v) (-want +got):\n%s", tc.q, diff)
			}
		})
	}
}

func testEventTotals(t *testing.T, open openFunc) {
	s := open(t, Options{})
	ctx := context.Background()
	all := queryEvents()
	for i := range all {
		all[i].Comm = "c" + string(rune('a'+i))
	}
	mustInsert(t, s, all)
	for _, tc := range []struct {
		name string
		q    Query
		want []TypeTotal
	}{
		{"settlement", Query{AttrKey: "settlement.id", AttrValue: "4821", Limit: 1, Order: OrderSlowest}, []TypeTotal{
			{Type: event.TypeRead, Events: 2, DurNs: 1050, FirstNs: t0, Comm: "ca"},
			{Type: event.TypeWrite, Events: 1, DurNs: 70, FirstNs: t0 + 10, Comm: "cb"},
		}},
		{"process", Query{Node: "n1", PID: 100}, []TypeTotal{
			{Type: event.TypeRead, Events: 2, DurNs: 1050, FirstNs: t0, Comm: "ca"},
			{Type: event.TypeWrite, Events: 2, DurNs: 3070, FirstNs: t0 + 10, Comm: "cb"},
			{Type: event.TypeTCPSend, Events: 1, DurNs: 900, FirstNs: t0 + 20, Comm: "cc"},
			{Type: event.TypeSchedSwitch, Events: 1, DurNs: 30, FirstNs: t0 + 30, Comm: "cd"},
			{Type: event.TypePageFault, Events: 1, DurNs: 10, FirstNs: t0 + 40, Comm: "cg"},
		}},
		{"nothing", Query{Node: "n9"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.EventTotals(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("EventTotals(%+v) (-want +got):\n%s", tc.q, diff)
			}
		})
	}

	// Many subjects' totals in one query: the same counts as one EventTotals per value.
	for _, tc := range []struct {
		key    string
		values []string
		want   []ValueTotal
	}{
		{"settlement.id", []string{"4822", "4821", "4899"}, []ValueTotal{
			{Value: "4821", Events: 3, FirstNs: t0, Comm: "ca"},
			{Value: "4822", Events: 1, FirstNs: t0 + 20, Comm: "cc"},
		}},
		{"payment.id", []string{"PAY-1"}, []ValueTotal{{Value: "PAY-1", Events: 1, FirstNs: t0 + 10, Comm: "cb"}}},
		{"payment.id", nil, nil},
	} {
		got, err := s.EventTotalsByValue(ctx, tc.key, tc.values)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(a, b ValueTotal) int { return strings.Compare(a.Value, b.Value) })
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("EventTotalsByValue(%s, %q) (-want +got):\n%s", tc.key, tc.values, diff)
		}
	}
	if _, err := s.EventTotalsByValue(ctx, "", []string{"x"}); err == nil {
		t.Error("EventTotalsByValue with no key: no error")
	}

	// Slowest events of equal duration keep time order, then ID order.
	ties := []event.Event{
		{ID: 103, TsNs: t0 + 5, Node: "tie", PID: 1, Type: event.TypeRead, DurNs: 7},
		{ID: 102, TsNs: t0 + 5, Node: "tie", PID: 1, Type: event.TypeRead, DurNs: 7},
		{ID: 101, TsNs: t0 + 9, Node: "tie", PID: 1, Type: event.TypeRead, DurNs: 9},
		{ID: 100, TsNs: t0 + 1, Node: "tie", PID: 1, Type: event.TypeRead, DurNs: 7},
	}
	mustInsert(t, s, ties)
	if diff := cmp.Diff([]uint64{101, 100, 102, 103}, ids(mustEvents(t, s, Query{Node: "tie", Order: OrderSlowest}))); diff != "" {
		t.Errorf("slowest with ties (-want +got):\n%s", diff)
	}
}
