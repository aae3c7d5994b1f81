// Package event is kprobe's model of one kernel event: the Go type every part of the
// pipeline passes around, its stable ID, its versioned protobuf wire encoding (for Kafka)
// and its JSON-lines form (for scripts and checks).
package event
