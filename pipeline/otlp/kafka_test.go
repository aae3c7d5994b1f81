package otlp

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/kprobe/kprobe/pipeline/span"
)

func kafkaValue(t testing.TB) []byte {
	t.Helper()
	return kafkaValueOf(t, testTraces(nil))
}

func kafkaValueOf(t testing.TB, td ptrace.Traces) []byte {
	t.Helper()
	var m ptrace.ProtoMarshaler
	b, err := m.MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeKafka(t *testing.T) {
	exportReq, err := ptraceotlp.NewExportRequestFromTraces(testTraces(nil)).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		value   []byte
		want    []span.Span
		wantErr bool
	}{
		{name: "TracesData as the collector's kafka exporter writes it", value: kafkaValue(t), want: []span.Span{wantParent(), wantChild()}},
		{name: "ExportTraceServiceRequest", value: exportReq, want: []span.Span{wantParent(), wantChild()}},
		{name: "empty message", value: nil, want: []span.Span{}},
		{name: "truncated", value: kafkaValue(t)[:40], wantErr: true},
		{name: "not protobuf", value: []byte("{\"resourceSpans\":[]}"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeKafka(tt.value)
			if (err != nil) != tt.wantErr {
				t.Fatalf("DecodeKafka error = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DecodeKafka (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzDecodeKafka(f *testing.F) {
	v := kafkaValue(f)
	f.Add(v)
	f.Add(v[:len(v)/2])
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, value []byte) {
		spans, err := DecodeKafka(value)
		if err != nil && spans != nil {
			t.Fatalf("spans %v returned with error %v", spans, err)
		}
		for _, s := range spans {
			if s.TraceID == "" || s.SpanID == "" || s.EndNs < s.StartNs {
				t.Fatalf("unjoinable span returned: %+v", s)
			}
		}
	})
}
