// Package engine is the server side of the pipeline: it consumes kernel event batches
// and spans from a bus, joins them in the correlator, writes the event log, publishes
// kernel.enriched, and commits input only once what it carried is durably written.
package engine
