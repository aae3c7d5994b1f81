package client

import (
	"context"
	"fmt"
	"io"

	"connectrpc.com/connect"

	"github.com/kprobe/kprobe/api/convert"
	kprobev1 "github.com/kprobe/kprobe/api/kprobe/v1"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// LiveFilter selects what a live stream carries; zero fields match everything.
type LiveFilter struct {
	Node         string
	PID          uint32
	Types        []event.Type
	Kinds        []string
	SubjectsOnly bool
}

// LiveUpdate is what one message of the live stream carried.
type LiveUpdate struct {
	Subjects []investigate.Subject
	Events   []event.Event
	// Missed counts the events and spans the server dropped for this stream because it did
	// not keep up, since the stream began.
	Missed uint64
}

// LiveStream is an open StreamLive subscription.
type LiveStream struct {
	c      *Client
	stream *connect.ServerStreamForClient[kprobev1.StreamLiveResponse]
}

// Live subscribes to what is being recorded. It returns once the server has the
// subscription in place: whatever is written after that is delivered (or counted missed).
// The stream ends with ctx.
func (c *Client) Live(ctx context.Context, f LiveFilter) (*LiveStream, error) {
	stream, err := c.rpc.StreamLive(ctx, connect.NewRequest(&kprobev1.StreamLiveRequest{
		Node: f.Node, Pid: f.PID, Types: convert.TypesToStrings(f.Types), Kinds: f.Kinds, SubjectsOnly: f.SubjectsOnly}))
	if err != nil {
		return nil, c.wrap("live", err)
	}
	if !stream.Receive() {
		err := stream.Err()
		stream.Close()
		if err == nil {
			return nil, fmt.Errorf("live: api %s ended the stream at once", c.addr)
		}
		return nil, c.wrap("live", err)
	}
	return &LiveStream{c: c, stream: stream}, nil
}

// Next blocks for the next update; io.EOF when the server ended the stream.
func (l *LiveStream) Next() (LiveUpdate, error) {
	if !l.stream.Receive() {
		if err := l.stream.Err(); err != nil {
			return LiveUpdate{}, l.c.wrap("live", err)
		}
		return LiveUpdate{}, io.EOF
	}
	m := l.stream.Msg()
	u := LiveUpdate{Subjects: convert.SubjectsFromPB(m.GetSubjects()), Missed: m.GetMissed()}
	var err error
	if u.Events, err = convert.EventsFromPB(nil, m.GetEvents()); err != nil {
		return LiveUpdate{}, fmt.Errorf("live from api %s: %w", l.c.addr, err)
	}
	return u, nil
}

// Close ends the subscription.
func (l *LiveStream) Close() error { return l.stream.Close() }
