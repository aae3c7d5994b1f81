package convert

import (
	kprobev1 "github.com/kprobe/kprobe/api/kprobe/v1"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// SubjectToPB is s as the API sends it.
func SubjectToPB(s *investigate.Subject) *kprobev1.Subject {
	return &kprobev1.Subject{
		Kind: s.Kind, Id: s.ID, StartNs: s.StartNs, DurationNs: s.DurationNs, Status: s.Status,
		TraceId: s.TraceID, Service: s.Service, Node: s.Node, Pid: s.PID, Comm: s.Comm,
		Spans: int64(s.Spans), Events: int64(s.Events),
	}
}

// SubjectFromPB is the inverse of SubjectToPB.
func SubjectFromPB(s *kprobev1.Subject) investigate.Subject {
	return investigate.Subject{
		Kind: s.GetKind(), ID: s.GetId(), StartNs: s.GetStartNs(), DurationNs: s.GetDurationNs(),
		Status: s.GetStatus(), TraceID: s.GetTraceId(), Service: s.GetService(), Node: s.GetNode(),
		PID: s.GetPid(), Comm: s.GetComm(), Spans: int(s.GetSpans()), Events: int(s.GetEvents()),
	}
}

// SubjectsToPB converts a list.
func SubjectsToPB(ss []investigate.Subject) []*kprobev1.Subject {
	out := make([]*kprobev1.Subject, len(ss))
	for i := range ss {
		out[i] = SubjectToPB(&ss[i])
	}
	return out
}

// SubjectsFromPB converts a list.
func SubjectsFromPB(ss []*kprobev1.Subject) []investigate.Subject {
	out := make([]investigate.Subject, len(ss))
	for i, s := range ss {
		out[i] = SubjectFromPB(s)
	}
	return out
}

func processToPB(p *investigate.Process) *kprobev1.Process {
	if p == nil {
		return nil
	}
	return &kprobev1.Process{Node: p.Node, Pid: p.PID, Comm: p.Comm}
}

func processFromPB(p *kprobev1.Process) *investigate.Process {
	if p == nil {
		return nil
	}
	return &investigate.Process{Node: p.GetNode(), PID: p.GetPid(), Comm: p.GetComm()}
}

// ChainToPB is c as GetChain answers it.
func ChainToPB(c *investigate.Chain) *kprobev1.GetChainResponse {
	out := &kprobev1.GetChainResponse{Subject: SubjectToPB(&c.Subject), Causes: make([]*kprobev1.Cause, len(c.Causes))}
	for i := range c.Causes {
		cs := &c.Causes[i]
		pc := &kprobev1.Cause{
			Rank: int32(cs.Rank), Kind: cs.Kind, ExplainedNs: cs.ExplainedNs, Share: cs.Share,
			Confidence: cs.Confidence, Join: cs.Join, Rule: cs.Rule, WhatIfNs: cs.WhatIfNs,
			Process: processToPB(cs.Process), Resource: cs.Resource, Summary: cs.Summary,
			Evidence: cs.Evidence, Path: make([]*kprobev1.Step, len(cs.Path)),
		}
		for j := range cs.Path {
			st := &cs.Path[j]
			pc.Path[j] = &kprobev1.Step{Kind: st.Kind, Name: st.Name, DurationNs: st.DurationNs,
				Process: processToPB(st.Process), Detail: st.Detail}
		}
		out.Causes[i] = pc
	}
	return out
}

// ChainFromPB is the inverse of ChainToPB.
func ChainFromPB(r *kprobev1.GetChainResponse) investigate.Chain {
	var c investigate.Chain
	if r.GetSubject() != nil {
		c.Subject = SubjectFromPB(r.GetSubject())
	}
	c.Causes = make([]investigate.Cause, len(r.GetCauses()))
	for i, pc := range r.GetCauses() {
		cs := investigate.Cause{
			Rank: int(pc.GetRank()), Kind: pc.GetKind(), ExplainedNs: pc.GetExplainedNs(),
			Share: pc.GetShare(), Confidence: pc.GetConfidence(), Join: pc.GetJoin(), Rule: pc.GetRule(),
			WhatIfNs: pc.GetWhatIfNs(), Process: processFromPB(pc.GetProcess()), Resource: pc.GetResource(),
			Summary: pc.GetSummary(), Evidence: append(make([]string, 0, len(pc.GetEvidence())), pc.GetEvidence()...), Path: make([]investigate.Step, len(pc.GetPath())),
		}
		for j, st := range pc.GetPath() {
			cs.Path[j] = investigate.Step{Kind: st.GetKind(), Name: st.GetName(), DurationNs: st.GetDurationNs(),
				Process: processFromPB(st.GetProcess()), Detail: st.GetDetail()}
		}
		c.Causes[i] = cs
	}
	return c
}
