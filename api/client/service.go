package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	"github.com/kprobe/kprobe/api/convert"
	kprobev1 "github.com/kprobe/kprobe/api/kprobe/v1"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// pageSize is the page the client asks QueryEvents for: few messages, each well under the
// server's size cap.
const pageSize = 5000

// Subjects implements investigate.Service.
func (c *Client) Subjects(ctx context.Context, q investigate.SubjectQuery) ([]investigate.Subject, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.rpc.ListSettlements(ctx, connect.NewRequest(&kprobev1.ListSettlementsRequest{
		Kind: q.Kind, FromNs: q.From, ToNs: q.To, Limit: int32(min(q.Limit, 1<<30)), FailedOnly: q.FailedOnly}))
	if err != nil {
		return nil, c.wrap("subjects", err)
	}
	return convert.SubjectsFromPB(res.Msg.GetSubjects()), nil
}

// Chain implements investigate.Service.
func (c *Client) Chain(ctx context.Context, ref investigate.Ref) (investigate.Chain, error) {
	req := &kprobev1.GetChainRequest{}
	if err := convert.SetRef(req, ref); err != nil {
		return investigate.Chain{}, fmt.Errorf("chain: %w: %w", investigate.ErrInvalid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.rpc.GetChain(ctx, connect.NewRequest(req))
	if err != nil {
		return investigate.Chain{}, c.wrap("chain", err)
	}
	return convert.ChainFromPB(res.Msg), nil
}

// Events implements investigate.Service; it reads every page of the stream.
func (c *Client) Events(ctx context.Context, q investigate.EventQuery) ([]event.Event, error) {
	req := &kprobev1.QueryEventsRequest{Node: q.Node, Pid: q.PID, Tid: q.TID, SpanId: q.SpanID,
		FromNs: q.From, ToNs: q.To, Types: convert.TypesToStrings(q.Types), Ids: q.IDs,
		PageSize: pageSize, Limit: int64(q.Limit)}
	if q.Ref != (investigate.Ref{}) {
		req.Subject = &kprobev1.SubjectRef{}
		if err := convert.SetRef(req.Subject, q.Ref); err != nil {
			return nil, fmt.Errorf("events: %w: %w", investigate.ErrInvalid, err)
		}
	}
	stream, err := c.rpc.QueryEvents(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, c.wrap("events", err)
	}
	return readEvents(c, "events", stream)
}

// SyscallLog implements investigate.Service: what a local replay needs, streamed.
func (c *Client) SyscallLog(ctx context.Context, q investigate.SyscallLogQuery) ([]event.Event, error) {
	stream, err := c.rpc.GetSyscallLog(ctx, connect.NewRequest(&kprobev1.GetSyscallLogRequest{
		Node: q.Node, Pid: q.PID, FromNs: q.From, ToNs: q.To}))
	if err != nil {
		return nil, c.wrap("syscall log", err)
	}
	return readEvents(c, "syscall log", stream)
}

// readEvents reads a stream of event messages (QueryEvents' pages, GetSyscallLog's
// chunks) to its end and closes it.
func readEvents[M any, PM interface {
	*M
	GetEvents() []*kprobev1.Event
}](c *Client, what string, stream *connect.ServerStreamForClient[M]) ([]event.Event, error) {
	defer stream.Close()
	var out []event.Event
	var err error
	for stream.Receive() {
		if out, err = convert.EventsFromPB(out, PM(stream.Msg()).GetEvents()); err != nil {
			return nil, fmt.Errorf("%s from api %s: %w", what, c.addr, err)
		}
	}
	if err := stream.Err(); err != nil {
		return nil, c.wrap(what, err)
	}
	return out, nil
}

// Report returns the markdown incident report of ref, as the server builds it.
func (c *Client) Report(ctx context.Context, ref investigate.Ref, evidenceRows int) ([]byte, error) {
	req := &kprobev1.GetReportRequest{EvidenceRows: int32(min(evidenceRows, 1<<30))}
	if err := convert.SetRef(req, ref); err != nil {
		return nil, fmt.Errorf("report: %w: %w", investigate.ErrInvalid, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.rpc.GetReport(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, c.wrap("report", err)
	}
	return []byte(res.Msg.GetMarkdown()), nil
}

// Error is an API error: its message is the server's, and it matches both its code
// (connect.CodeOf) and the use-case sentinel that code stands for (errors.Is with
// investigate.ErrNotFound or ErrInvalid), so callers handle a remote answer as a local one.
type Error struct {
	What string
	Addr string
	err  *connect.Error
}

func (e *Error) Error() string {
	msg := e.err.Message()
	switch e.err.Code() {
	case connect.CodeUnauthenticated:
		return fmt.Sprintf("%s: the API at %s refused us (%s): give a token in KPROBE_API_TOKEN or --api-token-file, or a client certificate", e.What, e.Addr, msg)
	case connect.CodeUnavailable:
		if msg == "" || strings.Contains(msg, "dial") || strings.Contains(msg, "connect:") {
			return fmt.Sprintf("%s: cannot reach the API at %s: %s", e.What, e.Addr, msg)
		}
	case connect.CodeNotFound, connect.CodeInvalidArgument:
		return msg
	}
	return fmt.Sprintf("%s: api %s: %s: %s", e.What, e.Addr, e.err.Code(), msg)
}

func (e *Error) Unwrap() []error {
	switch e.err.Code() {
	case connect.CodeNotFound:
		return []error{e.err, investigate.ErrNotFound}
	case connect.CodeInvalidArgument:
		return []error{e.err, investigate.ErrInvalid}
	}
	return []error{e.err}
}

func (c *Client) wrap(what string, err error) error {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return fmt.Errorf("%s: api %s: %w", what, c.addr, err)
	}
	return &Error{What: what, Addr: c.addr, err: ce}
}
