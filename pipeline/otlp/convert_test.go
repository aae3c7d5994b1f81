package otlp

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kprobe/kprobe/pipeline/span"
)

var (
	traceA  = pcommon.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	spanP   = pcommon.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}
	spanC   = pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
	traceAS = "4bf92f3577b34da6a3ce929d0e0e4736"
	spanPS  = "00f067aa0ba902b7"
	spanCS  = "0102030405060708"
)

// testTraces builds one resource (settlement-svc on node-a, pid 2847) with a parent
// and a child span; mutate lets a case change it.
func testTraces(mutate func(res pcommon.Map, parent, child ptrace.Span)) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	res := rs.Resource().Attributes()
	res.PutStr("service.name", "settlement-svc")
	res.PutStr("host.name", "node-a")
	res.PutInt("process.pid", 2847)
	res.PutStr("clearing.house", "CHX") // business, from the resource
	res.PutStr("telemetry.sdk.name", "opentelemetry")
	ss := rs.ScopeSpans().AppendEmpty().Spans()

	p := ss.AppendEmpty()
	p.SetTraceID(traceA)
	p.SetSpanID(spanP)
	p.SetName("settlement.process")
	p.SetStartTimestamp(1_000)
	p.SetEndTimestamp(9_000)
	p.Attributes().PutStr("settlement.id", "4821")
	p.Attributes().PutInt("payment.count", 3)
	p.Attributes().PutInt("thread.id", 2850)
	p.Attributes().PutStr("http.route", "/settle")

	c := ss.AppendEmpty()
	c.SetTraceID(traceA)
	c.SetSpanID(spanC)
	c.SetParentSpanID(spanP)
	c.SetName("ledger.write")
	c.SetStartTimestamp(2_000)
	c.SetEndTimestamp(3_000)
	c.Status().SetCode(ptrace.StatusCodeError)
	if mutate != nil {
		mutate(res, p, c)
	}
	return td
}

func wantParent() span.Span {
	return span.Span{
		TraceID: traceAS, SpanID: spanPS, Name: "settlement.process",
		Service: "settlement-svc", Host: "node-a", PID: 2847, TID: 2850,
		StartNs: 1_000, EndNs: 9_000,
		Attrs: map[string]string{"settlement.id": "4821", "payment.count": "3", "clearing.house": "CHX"},
	}
}

func wantChild() span.Span {
	return span.Span{
		TraceID: traceAS, SpanID: spanCS, ParentID: spanPS, Name: "ledger.write",
		Service: "settlement-svc", Host: "node-a", PID: 2847,
		StartNs: 2_000, EndNs: 3_000, Status: span.StatusError,
		Attrs: map[string]string{"clearing.house": "CHX"},
	}
}

func TestConvert(t *testing.T) {
	tests := []struct {
		name         string
		conv         Converter
		mutate       func(res pcommon.Map, parent, child ptrace.Span)
		want         func() []span.Span
		wantRejected int
	}{
		{
			name: "semantic conventions and business attributes",
			want: func() []span.Span { return []span.Span{wantParent(), wantChild()} },
		},
		{
			name: "pid and tid as strings, tid on the resource",
			mutate: func(res pcommon.Map, p, c ptrace.Span) {
				res.PutStr("process.pid", "2847")
				res.PutStr("thread.id", "7")
				p.Attributes().Remove("thread.id")
			},
			want: func() []span.Span {
				p, c := wantParent(), wantChild()
				p.TID, c.TID = 7, 7
				return []span.Span{p, c}
			},
		},
		{
			name: "span attribute wins over the resource",
			mutate: func(res pcommon.Map, p, c ptrace.Span) {
				c.Attributes().PutStr("clearing.house", "LCH")
			},
			want: func() []span.Span {
				c := wantChild()
				c.Attrs["clearing.house"] = "LCH"
				return []span.Span{wantParent(), c}
			},
		},
		{
			name: "out of range pid is unknown",
			mutate: func(res pcommon.Map, p, c ptrace.Span) {
				res.PutInt("process.pid", -1)
				p.Attributes().PutInt("thread.id", 1<<40)
			},
			want: func() []span.Span {
				p, c := wantParent(), wantChild()
				p.PID, c.PID, p.TID = 0, 0, 0
				return []span.Span{p, c}
			},
		},
		{
			name: "custom business prefixes",
			conv: Converter{Business: span.Business{Prefixes: []string{"http."}}},
			want: func() []span.Span {
				p, c := wantParent(), wantChild()
				p.Attrs = map[string]string{"http.route": "/settle"}
				c.Attrs = nil
				return []span.Span{p, c}
			},
		},
		{
			name: "spans that cannot be joined are rejected",
			mutate: func(res pcommon.Map, p, c ptrace.Span) {
				p.SetEndTimestamp(500) // ends before it starts
				c.SetSpanID(pcommon.NewSpanIDEmpty())
			},
			want:         func() []span.Span { return []span.Span{} },
			wantRejected: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rejected := tt.conv.Convert(testTraces(tt.mutate))
			if diff := cmp.Diff(tt.want(), got); diff != "" {
				t.Errorf("Convert spans (-want +got):\n%s", diff)
			}
			if rejected != tt.wantRejected {
				t.Errorf("Convert rejected = %d, want %d", rejected, tt.wantRejected)
			}
		})
	}
}
