package server_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// fakeService answers from memory, for the protocol's own tests (paging, codes, auth);
// the RPCs over the real stores are tested in contract_test.go.
type fakeService struct {
	mu       sync.Mutex
	subjects []investigate.Subject
	chains   map[string]investigate.Chain
	events   []event.Event // sorted by time, then ID
	err      error         // returned by every call when set
	calls    int
}

func (f *fakeService) Subjects(ctx context.Context, q investigate.SubjectQuery) ([]investigate.Subject, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	var out []investigate.Subject
	for _, s := range f.subjects {
		if s.Kind == q.Kind && (q.From == 0 || s.StartNs >= q.From) && (q.To == 0 || s.StartNs < q.To) &&
			(!q.FailedOnly || s.Status == "error") {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b investigate.Subject) int { return cmp.Compare(b.DurationNs, a.DurationNs) })
	return out[:min(len(out), q.Limit)], nil
}

func (f *fakeService) Chain(ctx context.Context, ref investigate.Ref) (investigate.Chain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return investigate.Chain{}, f.err
	}
	c, ok := f.chains[ref.Kind+"/"+ref.ID+ref.TraceID]
	if !ok {
		return c, fmt.Errorf("chain: %s %s: %w", ref.Kind, ref.ID, investigate.ErrNotFound)
	}
	return c, nil
}

func (f *fakeService) Events(ctx context.Context, q investigate.EventQuery) ([]event.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	var out []event.Event
	for _, e := range f.events {
		if (q.PID != 0 && e.PID != q.PID) || (q.From != 0 && e.TsNs < q.From) || (q.To != 0 && e.TsNs >= q.To) ||
			(len(q.Types) > 0 && !slices.Contains(q.Types, e.Type)) || (len(q.IDs) > 0 && !slices.Contains(q.IDs, e.ID)) ||
			(q.Ref.ID != "" && e.Attrs[q.Ref.Kind+".id"] != q.Ref.ID) {
			continue
		}
		out = append(out, e)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

func (f *fakeService) SyscallLog(ctx context.Context, q investigate.SyscallLogQuery) ([]event.Event, error) {
	return f.Events(ctx, investigate.EventQuery{PID: q.PID, From: q.From, To: q.To,
		Types: []event.Type{event.TypeRead, event.TypeWrite}})
}

func (f *fakeService) Close() error { return nil }

func (f *fakeService) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// newFake holds n events of pid 7: timestamps repeat (groups of 5 share one), so paging
// must resume inside a timestamp; every third belongs to settlement 4821.
func newFake(n int) *fakeService {
	f := &fakeService{chains: map[string]investigate.Chain{}}
	for i := range n {
		e := event.Event{ID: uint64(1000 + i), TsNs: 1_000_000 + int64(i/5)*10, Node: "n1", PID: 7, TID: 7,
			Type: event.Types()[i%len(event.Types())], DurNs: uint64(i), Comm: "settle"}
		if e.Type == event.TypeRead {
			e.Payload = []byte(fmt.Sprintf("payload %d", i))
		}
		if i%3 == 0 {
			e.Attrs = map[string]string{"settlement.id": "4821"}
		}
		f.events = append(f.events, e)
	}
	f.subjects = []investigate.Subject{
		{Kind: "settlement", ID: "4821", StartNs: 1_000_000, DurationNs: 900_000_000, Status: "error", TraceID: "t1", PID: 7},
		{Kind: "settlement", ID: "4822", StartNs: 2_000_000, DurationNs: 5_000_000, Status: "ok", TraceID: "t2", PID: 7},
		{Kind: "payment", ID: "PAY-1", StartNs: 1_000_000, DurationNs: 1_000, TraceID: "t1", PID: 7},
	}
	f.chains["settlement/4821"] = investigate.Chain{Subject: f.subjects[0], Causes: []investigate.Cause{{
		Rank: 1, Kind: investigate.CauseCPUContention, ExplainedNs: 600_000_000, Share: 0.66, Confidence: 0.9,
		Join: "tid", Rule: "runq-delay", WhatIfNs: 300_000_000, Process: &investigate.Process{Node: "n1", PID: 9, Comm: "noisy"},
		Summary: "preempted by noisy", Evidence: []string{"1000", "1003"},
		Path: []investigate.Step{{Kind: "span", Name: "ledger.post", DurationNs: 800_000_000}},
	}}}
	return f
}
