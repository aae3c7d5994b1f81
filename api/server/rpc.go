package server

import (
	"context"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/kprobe/kprobe/api/convert"
	kprobev1 "github.com/kprobe/kprobe/api/kprobe/v1"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// ListSettlements answers the slowest (or failed) business objects of a window.
func (s *Server) ListSettlements(ctx context.Context, req *connect.Request[kprobev1.ListSettlementsRequest]) (*connect.Response[kprobev1.ListSettlementsResponse], error) {
	m := req.Msg
	if err := window(m.GetFromNs(), m.GetToNs()); err != nil {
		return nil, err
	}
	limit := int(m.GetLimit())
	switch {
	case limit < 0 || limit > maxSubjects:
		return nil, invalid("limit %d: want 0 (default %d) to %d", limit, defaultSubjects, maxSubjects)
	case limit == 0:
		limit = defaultSubjects
	}
	kind := m.GetKind()
	if kind == "" {
		kind = investigate.KindSettlement
	}
	subs, err := s.svc.Subjects(ctx, investigate.SubjectQuery{Kind: kind, From: m.GetFromNs(), To: m.GetToNs(),
		Limit: limit, FailedOnly: m.GetFailedOnly()})
	if err != nil {
		return nil, fromService(err)
	}
	return connect.NewResponse(&kprobev1.ListSettlementsResponse{Subjects: convert.SubjectsToPB(subs)}), nil
}

// GetChain answers the causal chain of one business object.
func (s *Server) GetChain(ctx context.Context, req *connect.Request[kprobev1.GetChainRequest]) (*connect.Response[kprobev1.GetChainResponse], error) {
	ref, err := refOf(req.Msg)
	if err != nil {
		return nil, err
	}
	ch, err := s.svc.Chain(ctx, ref)
	if err != nil {
		return nil, fromService(err)
	}
	return connect.NewResponse(convert.ChainToPB(&ch)), nil
}

// GetReport answers the markdown incident report of one business object.
func (s *Server) GetReport(ctx context.Context, req *connect.Request[kprobev1.GetReportRequest]) (*connect.Response[kprobev1.GetReportResponse], error) {
	ref, err := refOf(req.Msg)
	if err != nil {
		return nil, err
	}
	rows := int(req.Msg.GetEvidenceRows())
	if rows < 0 || rows > 1000 {
		return nil, invalid("evidence_rows %d: want 0 (default) to 1000", rows)
	}
	rep, err := investigate.BuildReport(ctx, s.svc, ref, investigate.ReportOptions{EvidenceRows: rows, Source: s.opts.Source})
	if err != nil {
		return nil, fromService(err)
	}
	return connect.NewResponse(&kprobev1.GetReportResponse{Markdown: string(rep.Markdown())}), nil
}

// refOf reads a request's subject; a request naming none is the caller's mistake.
func refOf(m proto.Message) (investigate.Ref, error) {
	ref, err := convert.RefOf(m)
	if err != nil {
		return ref, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return ref, nil
}

// window checks a [from, to) window in ns; 0 leaves a side open.
func window(from, to int64) error {
	if from < 0 || to < 0 {
		return invalid("from_ns %d / to_ns %d: want ns since the Unix epoch, or 0 for open", from, to)
	}
	if to != 0 && from > to {
		return invalid("from_ns %d is after to_ns %d", from, to)
	}
	return nil
}
