// Package span is the trace span model the correlator joins kernel events to: one
// finished OpenTelemetry span reduced to what the join needs (host, pid, tid, time
// range, parent) and the business attributes it carries (settlement.id, payment.id, ...).
package span
