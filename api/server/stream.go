package server

import (
	"context"
	"slices"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/kprobe/kprobe/api/convert"
	kprobev1 "github.com/kprobe/kprobe/api/kprobe/v1"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// QueryEvents streams the matching events a page at a time, each page with the token that
// resumes after it. Pages are fetched one at a time, so a huge result never sits in memory.
func (s *Server) QueryEvents(ctx context.Context, req *connect.Request[kprobev1.QueryEventsRequest], stream *connect.ServerStream[kprobev1.QueryEventsResponse]) error {
	m := req.Msg
	q, err := eventQuery(m)
	if err != nil {
		return err
	}
	page := int(m.GetPageSize())
	switch {
	case page < 0 || page > maxPageSize:
		return invalid("page_size %d: want 0 (default %d) to %d", page, defaultPageSize, maxPageSize)
	case page == 0:
		page = defaultPageSize
	}
	if m.GetLimit() < 0 {
		return invalid("limit %d: want 0 (every match) or more", m.GetLimit())
	}
	var after *pageToken
	tok := pageToken{}
	if m.GetPageToken() != "" {
		if tok, err = decodeToken(m.GetPageToken()); err != nil {
			return connect.NewError(connect.CodeInvalidArgument, err)
		}
		after = &tok
	}
	for {
		want := page
		if m.GetLimit() > 0 {
			rest := m.GetLimit() - tok.Sent
			if rest <= 0 {
				return nil
			}
			want = int(min(int64(want), rest))
		}
		evs, exhausted, err := s.eventsAfter(ctx, q, after, want)
		if err != nil {
			return fromService(err)
		}
		if len(evs) == 0 {
			return nil
		}
		pbs := fitMessage(convert.EventsToPB(evs))
		if len(pbs) < len(evs) {
			exhausted = false
		}
		last := evs[len(pbs)-1]
		tok = pageToken{TsNs: last.TsNs, ID: last.ID, Sent: tok.Sent + int64(len(pbs))}
		after = &tok
		res := &kprobev1.QueryEventsResponse{Events: pbs}
		if !exhausted {
			res.NextPageToken = tok.encode()
		}
		if err := stream.Send(res); err != nil {
			return err
		}
		if exhausted {
			return nil
		}
	}
}

// eventsAfter returns up to want events of q that come after the token's position, and
// whether q has no more. Events at the token's very timestamp are fetched again and
// skipped; when many share it, the over-fetch grows until it clears them.
func (s *Server) eventsAfter(ctx context.Context, q investigate.EventQuery, after *pageToken, want int) ([]event.Event, bool, error) {
	extra := 0
	if after != nil {
		q.From = max(q.From, after.TsNs)
		extra = 8
	}
	for {
		q.Limit = want + extra
		evs, err := s.svc.Events(ctx, q)
		if err != nil {
			return nil, false, err
		}
		raw := len(evs)
		if after != nil {
			evs = slices.DeleteFunc(evs, func(e event.Event) bool {
				return e.TsNs < after.TsNs || (e.TsNs == after.TsNs && e.ID <= after.ID)
			})
		}
		if raw < q.Limit {
			return evs[:min(len(evs), want)], len(evs) <= want, nil
		}
		if len(evs) >= want {
			return evs[:want], false, nil
		}
		extra = 2*(raw-len(evs)) + 8
	}
}

// fitMessage keeps the longest prefix of pbs that fits one streamed message (at least one
// event: a single event is bounded by the recorder's payload cap).
func fitMessage(pbs []*kprobev1.Event) []*kprobev1.Event {
	size := 0
	for i, p := range pbs {
		size += proto.Size(p) + 4
		if size > maxStreamBytes && i > 0 {
			return pbs[:i]
		}
	}
	return pbs
}

// eventQuery checks a QueryEventsRequest and turns it into the use-case query.
func eventQuery(m *kprobev1.QueryEventsRequest) (investigate.EventQuery, error) {
	q := investigate.EventQuery{Node: m.GetNode(), PID: m.GetPid(), TID: m.GetTid(), SpanID: m.GetSpanId(),
		From: m.GetFromNs(), To: m.GetToNs(), IDs: m.GetIds()}
	if err := window(q.From, q.To); err != nil {
		return q, err
	}
	if m.GetSubject() != nil {
		ref, err := refOf(m.GetSubject())
		if err != nil {
			return q, err
		}
		q.Ref = ref
	}
	if len(q.IDs) > maxIDs {
		return q, invalid("%d ids: at most %d a request", len(q.IDs), maxIDs)
	}
	types, err := convert.TypesFromStrings(m.GetTypes())
	if err != nil {
		return q, connect.NewError(connect.CodeInvalidArgument, err)
	}
	q.Types = types
	return q, nil
}

// GetSyscallLog streams a process's recorded syscalls, in order, in messages of bounded size.
func (s *Server) GetSyscallLog(ctx context.Context, req *connect.Request[kprobev1.GetSyscallLogRequest], stream *connect.ServerStream[kprobev1.GetSyscallLogResponse]) error {
	m := req.Msg
	if m.GetPid() == 0 {
		return invalid("pid is required: the syscall log is one process's")
	}
	if err := window(m.GetFromNs(), m.GetToNs()); err != nil {
		return err
	}
	evs, err := s.svc.SyscallLog(ctx, investigate.SyscallLogQuery{Node: m.GetNode(), PID: m.GetPid(),
		From: m.GetFromNs(), To: m.GetToNs()})
	if err != nil {
		return fromService(err)
	}
	pbs := convert.EventsToPB(evs)
	for len(pbs) > 0 {
		chunk := fitMessage(pbs[:min(len(pbs), maxPageSize)])
		if err := stream.Send(&kprobev1.GetSyscallLogResponse{Events: chunk}); err != nil {
			return err
		}
		pbs = pbs[len(chunk):]
	}
	return nil
}
