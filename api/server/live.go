package server

import (
	"context"
	"errors"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"github.com/kprobe/kprobe/api/convert"
	kprobev1 "github.com/kprobe/kprobe/api/kprobe/v1"
	"github.com/kprobe/kprobe/api/live"
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
	f, err := liveFilter(req.Msg)
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
	node         string
	pid          uint32
	types        []event.Type
	kinds        []string
	subjectsOnly bool
}

func liveFilter(m *kprobev1.StreamLiveRequest) (filter, error) {
	types, err := convert.TypesFromStrings(m.GetTypes())
	if err != nil {
		return filter{}, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return filter{node: m.GetNode(), pid: m.GetPid(), types: types, kinds: m.GetKinds(), subjectsOnly: m.GetSubjectsOnly()}, nil
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
	for _, sub := range subjectsOf(b.Spans) {
		if len(f.kinds) == 0 || slices.Contains(f.kinds, sub.Kind) {
			res.Subjects = append(res.Subjects, convert.SubjectToPB(&sub))
		}
	}
}

// attrKinds maps the business ID attributes of spans to the business kinds of the model;
// any other "<x>.id" attribute names kind x (dots become underscores).
var attrKinds = map[string]string{
	"settlement.id": investigate.KindSettlement,
	"payment.id":    investigate.KindPayment,
}

// subjectsOf summarises the business objects that spans just written belong to: one
// subject per kind and ID, spanning its spans. A subject whose spans arrive over several
// writes is sent again, each time with what that write held.
func subjectsOf(spans []span.Span) []investigate.Subject {
	var out []investigate.Subject
	index := map[[2]string]int{}
	for i := range spans {
		sp := &spans[i]
		for k, v := range sp.Attrs {
			base, ok := strings.CutSuffix(k, ".id")
			if !ok || v == "" {
				continue
			}
			kind := attrKinds[k]
			if kind == "" {
				kind = strings.ReplaceAll(base, ".", "_")
			}
			key := [2]string{kind, v}
			j, seen := index[key]
			if !seen {
				j = len(out)
				index[key] = j
				out = append(out, investigate.Subject{Kind: kind, ID: v, StartNs: sp.StartNs, TraceID: sp.TraceID,
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
