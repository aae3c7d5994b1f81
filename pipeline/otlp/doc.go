// Package otlp ingests OpenTelemetry traces: a light OTLP receiver (gRPC and HTTP, no
// collector), the decoder for OTLP protobuf messages that the OpenTelemetry Collector's
// Kafka exporter writes, and the conversion of both into span.Span.
package otlp
