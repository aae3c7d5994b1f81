package engine

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/correlate"
)

// TestEngineSpansFromTopic: spans arriving on a topic as the OpenTelemetry Collector's
// Kafka exporter writes them (otlp_proto) are joined like spans sent over OTLP, and kept
// in the store; a malformed span message is dead-lettered.
func TestEngineSpansFromTopic(t *testing.T) {
	value := spanMessage(t, "settlement.process", map[string]string{"settlement.id": "4821"})

	src, out := &recordingSource{Memory: bus.NewMemory(16)}, bus.NewMemory(16)
	store := &spanMemStore{}
	e, done := runEngine(t, Options{Source: src, Store: store, Out: out, SpansTopic: "otlp_spans",
		FlushEvery: 10 * time.Millisecond, Correlate: correlate.Options{Lateness: time.Millisecond}})
	src.Publish(bus.Message{Topic: "otlp_spans", Value: value})
	src.Publish(bus.Message{Topic: "otlp_spans", Value: []byte{0xff, 0x01}})
	waitFor(t, "the span and the dead letter", func() bool {
		st := e.Stats()
		return st.Correlator.SpansIn == 1 && st.DeadLettered == 1
	})
	src.Publish(batch(t, ev(1, 7, 150)))
	src.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := store.snapshot()[1]
	if got.TraceID != "0102030405060708090a0b0c0d0e0f10" || got.Attrs["settlement.id"] != "4821" || got.Join != "pid" {
		t.Errorf("event not joined to the span from the topic: %+v", got)
	}
	if len(store.spans) != 1 || store.spans[0].Name != "settlement.process" {
		t.Errorf("stored spans = %+v, want the settlement span", store.spans)
	}
	if st := e.Stats(); st.Spans != 1 || st.DeadLettered != 1 {
		t.Errorf("stats = %+v, want 1 span and 1 dead letter", st)
	}
	// The kernel batch (offset 2) is written, so committed; the span message (offset 0)
	// could still join events that arrive later, so it stays uncommitted (a restart reads
	// it again) and holds back the dead letter behind it in its partition.
	if diff := cmp.Diff([]int64{2}, src.commits()); diff != "" {
		t.Errorf("committed offsets (-want +got):\n%s", diff)
	}
}

// TestSpansTopicKeepsTheConfiguredBusinessKeys: the span topic's decoder keeps the
// business attributes the correlator is configured with (one resolved set), not the
// defaults: an "invoice." mapping's attributes reach the stored span and the joined
// event from Kafka as they do from OTLP.
func TestSpansTopicKeepsTheConfiguredBusinessKeys(t *testing.T) {
	value := spanMessage(t, "invoice.issue", map[string]string{"invoice.id": "INV-9", "settlement.id": "4821"})
	tests := []struct {
		name     string
		prefixes []string
		want     map[string]string
	}{
		{"defaults", nil, map[string]string{"settlement.id": "4821"}},
		{"configured", []string{"invoice."}, map[string]string{"invoice.id": "INV-9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &recordingSource{Memory: bus.NewMemory(16)}
			store := &spanMemStore{}
			e, done := runEngine(t, Options{Source: src, Store: store, SpansTopic: "otlp_spans", FlushEvery: 10 * time.Millisecond,
				Correlate: correlate.Options{Lateness: time.Millisecond, BusinessPrefixes: tt.prefixes}})
			src.Publish(bus.Message{Topic: "otlp_spans", Value: value})
			waitFor(t, "the span", func() bool { return e.Stats().Correlator.SpansIn == 1 })
			src.Publish(batch(t, ev(1, 7, 150)))
			src.Close()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if len(store.spans) != 1 {
				t.Fatalf("stored spans = %+v, want one", store.spans)
			}
			if diff := cmp.Diff(tt.want, store.spans[0].Attrs); diff != "" {
				t.Errorf("stored span's business attributes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, store.snapshot()[1].Attrs); diff != "" {
				t.Errorf("joined event's business attributes (-want +got):\n%s", diff)
			}
		})
	}
}

// spanMessage is one span of pid 7 on node n, from 100 to 200 ns, as the OpenTelemetry
// Collector's Kafka exporter writes it (otlp_proto).
func spanMessage(t *testing.T, name string, attrs map[string]string) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "settlement-svc")
	rs.Resource().Attributes().PutStr("host.name", "n")
	rs.Resource().Attributes().PutInt("process.pid", 7)
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
	sp.SetName(name)
	sp.SetStartTimestamp(pcommon.Timestamp(100))
	sp.SetEndTimestamp(pcommon.Timestamp(200))
	for k, v := range attrs {
		sp.Attributes().PutStr(k, v)
	}
	var m ptrace.ProtoMarshaler
	value, err := m.MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return value
}
