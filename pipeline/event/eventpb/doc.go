// Package eventpb is the generated protobuf code of the event wire schema (event.proto).
// Regenerate it with `make generate`; never edit event.pb.go by hand.
package eventpb
