package server

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// snakeJSON is Connect's JSON codec with the proto field names (duration_ns, explained_ns)
// instead of protojson's lowerCamelCase, so `curl` output reads like `kprobe-tui chain
// --format json`. protojson reads either spelling, so clients may send both.
type snakeJSON struct{ name string }

func (c snakeJSON) Name() string { return c.name }

func (c snakeJSON) Marshal(m any) ([]byte, error) {
	pm, ok := m.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%T is not a proto.Message", m)
	}
	return protojson.MarshalOptions{UseProtoNames: true}.Marshal(pm)
}

func (c snakeJSON) Unmarshal(b []byte, m any) error {
	pm, ok := m.(proto.Message)
	if !ok {
		return fmt.Errorf("%T is not a proto.Message", m)
	}
	if len(b) == 0 {
		// Connect sends an empty body for an empty message.
		return nil
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(b, pm)
}
