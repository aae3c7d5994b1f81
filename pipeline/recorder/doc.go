// Package recorder turns what the BPF probes report into pipeline events: it runs a
// bpf.Probes, converts each sample to an event.Event (wall-clock time, node, stable ID)
// and hands batches to a sink — a jsonl file, or a bus publisher (Kafka or in-process).
package recorder
