// Package kafka moves opaque byte messages through Apache Kafka: a producer that never blocks
// its caller (a bounded buffer that drops and counts when full, retrying while the broker is
// away) and a consumer-group reader whose offsets are committed only when the caller says so.
package kafka
