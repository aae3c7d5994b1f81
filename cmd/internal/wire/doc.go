// Package wire opens what the commands need from their flags: the use cases over the
// stores or an API for the commands that read (kprobe-tui's), and the event log, causal
// engine, engine and OTLP receiver for the commands that run an engine ('kprobe-agent
// standalone' and 'engine'), and the recorder with a held command ('record', 'standalone').
// Package main parses flags and prints; what runs is put together here, once.
package wire
