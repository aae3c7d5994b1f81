package otlp

import (
	"fmt"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/kprobe/kprobe/pipeline/span"
)

// DecodeKafka decodes one Kafka message value written by the OpenTelemetry Collector's
// Kafka exporter with encoding otlp_proto (a TracesData message; an OTLP
// ExportTraceServiceRequest has the same wire form and decodes too). It keeps the
// default business attributes; spans that cannot be joined are dropped.
func DecodeKafka(value []byte) ([]span.Span, error) {
	return Converter{}.DecodeKafka(value)
}

// DecodeKafka is the package-level DecodeKafka with c's business attributes.
func (c Converter) DecodeKafka(value []byte) ([]span.Span, error) {
	var u ptrace.ProtoUnmarshaler
	td, err := u.UnmarshalTraces(value)
	if err != nil {
		return nil, fmt.Errorf("decoding otlp_proto traces: %w", err)
	}
	spans, _ := c.Convert(td)
	return spans, nil
}
