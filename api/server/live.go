package server

import (
	"context"
	"errors"
	"slices"

	"connectrpc.com/connect"

	"github.com/kprobe/kprobe/api/convert"
	kprobev1 "github.com/kprobe/kprobe/api/kprobe/v1"
	"github.com/kprobe/kprobe/api/live"
	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/pipeline/span"
)

// liveMessageEvents is how many events one StreamLive message gathers from the batches
// waiting, so a fast recorder costs few messages.
const liveMessageEvents = 4096

// StreamLive streams what the engine writes, as it writes it. The first message is empty:
// it tells the client the subscription is in place.
func (s *Server) StreamLive(ctx context.Context, req *connect.Request[kprobev1.StreamLiveRequest], stream *connect.ServerStream[kprobev1.StreamLiveResponse]) error {
	if s.opts.Live == nil {
		return connect.NewError(connect.CodeUnavailable, errors.New(
			"this API server runs no engine, so it has no live feed: ask 'kprobe-agent standalone' or 'engine' started with --api"))
	}
	f, err := s.liveFilter(req.Msg)
	if err != nil {
		return err
	}
	if n := s.live.Add(1); int(n) > s.opts.MaxLiveStreams {
		s.live.Add(-1)
		return connect.NewError(connect.CodeResourceExhausted, errors.New("too many live streams at once; try again later"))
	}
	defer s.live.Add(-1)
	sub := s.opts.Live.Subscribe(s.opts.LiveBuffer)
	defer sub.Close()
	if err := stream.Send(&kprobev1.StreamLiveResponse{}); err != nil {
		return err
	}
	var missed uint64
	for {
		var b live.Batch
		select {
		case <-ctx.Done():
			return nil
		case b = <-sub.C():
		}
		res := &kprobev1.StreamLiveResponse{}
		f.add(res, b)
	gather:
		for len(res.Events) < liveMessageEvents {
			select {
			case b = <-sub.C():
				f.add(res, b)
			default:
				break gather
			}
		}
		res.Missed = sub.Missed()
		if len(res.Events) == 0 && len(res.Subjects) == 0 && res.Missed == missed {
			continue
		}
		missed = res.Missed
		if err := stream.Send(res); err != nil {
			return err
		}
	}
}

type filter struct {
	mapping      causal.Mapping
	node         string
	pid          uint32
	types        []event.Type
	kinds        []string
	subjectsOnly bool
}

func (s *Server) liveFilter(m *kprobev1.StreamLiveRequest) (filter, error) {
	types, err := convert.TypesFromStrings(m.GetTypes())
	if err != nil {
		return filter{}, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return filter{mapping: s.opts.Business, node: m.GetNode(), pid: m.GetPid(), types: types, kinds: m.GetKinds(), subjectsOnly: m.GetSubjectsOnly()}, nil
}

func (f filter) add(res *kprobev1.StreamLiveResponse, b live.Batch) {
	if !f.subjectsOnly {
		for i := range b.Events {
			e := &b.Events[i]
			if (f.node != "" && e.Node != f.node) || (f.pid != 0 && e.PID != f.pid) ||
				(len(f.types) > 0 && !slices.Contains(f.types, e.Type)) {
				continue
			}
			res.Events = append(res.Events, convert.EventToPB(e))
		}
	}
	for _, sub := range subjectsOf(f.mapping, b.Spans) {
		if len(f.kinds) == 0 || slices.Contains(f.kinds, sub.Kind) {
			res.Subjects = append(res.Subjects, convert.SubjectToPB(&sub))
		}
	}
}

// subjectsOf summarises the business objects that spans just written belong to, as the
// business mapping names them: one subject per kind and ID, spanning its spans. A subject
// whose spans arrive over several writes is sent again, each time with what that write held.
func subjectsOf(m causal.Mapping, spans []span.Span) []investigate.Subject {
	var out []investigate.Subject
	index := map[[2]string]int{}
	for i := range spans {
		sp := &spans[i]
		for _, o := range m.Objects(sp) {
			key := [2]string{o.Kind, o.ID}
			j, seen := index[key]
			if !seen {
				j = len(out)
				index[key] = j
				out = append(out, investigate.Subject{Kind: o.Kind, ID: o.ID, StartNs: sp.StartNs, TraceID: sp.TraceID,
					Service: sp.Service, Node: sp.Host, PID: sp.PID})
			}
			sub := &out[j]
			end := max(sub.StartNs+sub.DurationNs, sp.EndNs)
			sub.StartNs = min(sub.StartNs, sp.StartNs)
			sub.DurationNs = end - sub.StartNs
			sub.Spans++
			if sp.Status == span.StatusError || sub.Status == "" {
				sub.Status = sp.Status
			}
		}
	}
	return out
}
