// Package investigatetest provides an investigate.Service over a small, deterministic
// incident held in memory, for the tests and benchmarks of the Service's callers (the
// workstation, the report). The use cases over real stores are tested on recorded data.
package investigatetest

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// Base is the start of the incident: settlement 4821 starts 120 ms after it.
var Base = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano()

// Incident is the settlement the fixture's incident hit.
const Incident = "4821"

// Service is an in-memory investigate.Service. Its zero value is not usable: use New.
type Service struct {
	mu       sync.Mutex
	subjects []investigate.Subject
	chains   map[string]investigate.Chain // by kind/id
	events   []event.Event                // ordered by time
	closed   bool
	// Calls counts Subjects calls, so tests can wait for a refresh.
	calls int
}

// New returns the incident with n kernel events on the incident's process (at least the
// evidence; spread over the settlement's span).
func New(n int) *Service {
	s := &Service{chains: map[string]investigate.Chain{}}
	s.build(n)
	return s
}

// SubjectCalls is how many times Subjects was called.
func (s *Service) SubjectCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// AddSubject adds a business object, as a recorder running alongside would.
func (s *Service) AddSubject(sub investigate.Subject) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subjects = append(s.subjects, sub)
}

const (
	node = "node-a"
	pid  = 4242
	tid  = 4243
)

func (s *Service) build(n int) {
	start := Base + 120*int64(time.Millisecond)
	dur := int64(812300 * time.Microsecond)
	svc := investigate.Process{Node: node, PID: pid, Comm: "settlement-svc"}
	for i := range 24 {
		id := strconv.Itoa(4810 + i)
		d := int64(40+(i*37)%90) * int64(time.Millisecond)
		st := start - int64(24-i)*int64(time.Second)
		status := "ok"
		if id == Incident {
			d, st, status = dur, start, "error"
		} else if i%7 == 3 {
			status = "error"
		}
		s.subjects = append(s.subjects, investigate.Subject{
			Kind: investigate.KindSettlement, ID: id, StartNs: st, DurationNs: d, Status: status,
			TraceID: fmt.Sprintf("%032x", 0x4bf92f3577b34da6+i), Service: "settlement-svc",
			Node: node, PID: pid, Comm: "settlement-svc", Spans: 7, Events: 40 + i,
		})
	}
	for i := range 6 {
		s.subjects = append(s.subjects, investigate.Subject{
			Kind: investigate.KindPayment, ID: fmt.Sprintf("PAY-%d", 98720+i),
			StartNs: start + int64(i)*int64(time.Millisecond), DurationNs: int64(30+i*11) * int64(time.Millisecond),
			Status: "ok", TraceID: fmt.Sprintf("%032x", 0x9a0000+i), Service: "payment-svc",
			Node: node, PID: 4300, Comm: "payment-svc", Spans: 3, Events: 12,
		}, investigate.Subject{
			Kind: investigate.KindClearingWindow, ID: fmt.Sprintf("CW-%d", 1000+i),
			StartNs: Base + int64(i)*int64(time.Minute), DurationNs: int64(5+i) * int64(time.Second),
			Status: "ok", Service: "clearing-svc", Node: node, PID: 4400, Comm: "clearing-svc", Spans: 40, Events: 300,
		})
	}

	// Kernel events: the evidence of each cause first, then filler over the span.
	var storageIDs, cpuIDs, netIDs []string
	add := func(e event.Event) {
		e.ID = uint64(len(s.events) + 1)
		e.Node, e.PID, e.Comm = node, pid, "settlement-svc"
		if e.TID == 0 {
			e.TID = tid
		}
		e.Service, e.SpanName, e.Join = "settlement-svc", "ledger.post", "tid"
		e.TraceID = fmt.Sprintf("%032x", 0x4bf92f3577b34da6+11)
		e.Attrs = map[string]string{"settlement.id": Incident}
		s.events = append(s.events, e)
	}
	ms := int64(time.Millisecond)
	for i := range 3 {
		add(event.Event{TsNs: start + 100*ms + int64(i)*215*ms, CPU: 1, Type: event.TypeWrite, Syscall: "write",
			DurNs: uint64(211*ms + int64(i)*ms), FD: 7, Bytes: 256 << 10, Dev: 8<<20 | 1, Ino: 1234})
		storageIDs = append(storageIDs, strconv.FormatUint(s.events[len(s.events)-1].ID, 10))
	}
	for i := range 4 {
		add(event.Event{TsNs: start + 20*ms + int64(i)*20*ms, CPU: 1, Type: event.TypeSchedSwitch, Preempted: true,
			DurNs: uint64(24 * ms), NextPID: 5150, NextTID: 5150, NextComm: "batch-report", RunqDelayNs: uint64(24 * ms)})
		cpuIDs = append(cpuIDs, strconv.FormatUint(s.events[len(s.events)-1].ID, 10))
	}
	for i := range 2 {
		add(event.Event{TsNs: start + 760*ms + int64(i)*21*ms, CPU: 0, Type: event.TypeTCPRecv, DurNs: uint64(20*ms + int64(i)*ms),
			Bytes: 512, SAddr: netip.MustParseAddr("10.0.0.5"), SPort: 41234, DAddr: netip.MustParseAddr("10.0.0.9"), DPort: 5432})
		netIDs = append(netIDs, strconv.FormatUint(s.events[len(s.events)-1].ID, 10))
	}
	types := []event.Type{event.TypeRead, event.TypeWrite, event.TypeSchedSwitch, event.TypePageFault, event.TypeTCPSend}
	for i := 0; len(s.events) < n; i++ {
		t := types[i%len(types)]
		e := event.Event{TsNs: start + int64(i)*dur/int64(max(n, 1)), CPU: uint32(i % 2), Type: t,
			TID: tid + uint32(i%3), DurNs: uint64(1000 + (i*7919)%90000)}
		switch t {
		case event.TypeRead, event.TypeWrite:
			e.Syscall, e.FD, e.Bytes, e.Ino = t.String(), int32(3+i%5), int64(64+i%4000), uint64(1000+i%5)
		case event.TypeSchedSwitch:
			e.WakerPID, e.WakerTID, e.RunqDelayNs = 4242, 4244, uint64(i%5000)
		case event.TypePageFault:
			e.Addr, e.IP = 0x7f0000000000+uint64(i)*4096, 0x401000
		case event.TypeTCPSend:
			e.Bytes, e.SAddr, e.SPort = int64(200+i%100), netip.MustParseAddr("10.0.0.5"), 41234
			e.DAddr, e.DPort = netip.MustParseAddr("10.0.0.9"), 5432
		}
		add(e)
	}
	sort.SliceStable(s.events, func(i, j int) bool { return s.events[i].TsNs < s.events[j].TsNs })

	sub := s.subjects[11]
	sub.Events = len(s.events)
	s.subjects[11] = sub
	spanStep := func(name string, d time.Duration) investigate.Step {
		return investigate.Step{Kind: "span", Name: name, DurationNs: int64(d), Process: &svc}
	}
	batch := &investigate.Process{Node: node, PID: 5150, Comm: "batch-report"}
	s.chains[key(investigate.KindSettlement, Incident)] = investigate.Chain{
		Subject: sub,
		Causes: []investigate.Cause{{
			Rank: 1, Kind: investigate.CauseStorage, ExplainedNs: 634 * ms, Share: 634.0 / 812.3, Confidence: 0.95,
			Join: "tid", Rule: "slow-write", WhatIfNs: dur - 634*ms, Process: &svc,
			Resource: "file /var/lib/ledger/ledger.log (dev 8:1, inode 1234)",
			Summary:  "three 256 KiB ledger writes to ledger.log waited 634 ms on storage",
			Evidence: storageIDs,
			Path: []investigate.Step{spanStep("settlement.process", 812300*time.Microsecond), spanStep("ledger.post", 650*time.Millisecond),
				{Kind: "file", Name: "/var/lib/ledger/ledger.log", DurationNs: 634 * ms, Detail: "dev 8:1 inode 1234"}},
		}, {
			Rank: 2, Kind: investigate.CauseCPUContention, ExplainedNs: 96 * ms, Share: 96.0 / 812.3, Confidence: 0.8,
			Join: "tid", Rule: "runq-delay", WhatIfNs: dur - 96*ms, Process: batch, Resource: "cpu 1 on node-a",
			Summary:  "batch-report (pid 5150) held cpu 1 while settlement-svc waited 96 ms to run",
			Evidence: cpuIDs,
			Path: []investigate.Step{spanStep("settlement.process", 812300*time.Microsecond),
				{Kind: "cpu", Name: "cpu 1", DurationNs: 96 * ms}, {Kind: "process", Name: "batch-report", Process: batch}},
		}, {
			Rank: 3, Kind: investigate.CauseSlowPeer, ExplainedNs: 41 * ms, Share: 41.0 / 812.3, Confidence: 0.7,
			Join: "4-tuple", Rule: "tcp-wait", WhatIfNs: dur - 41*ms, Process: &svc,
			Resource: "socket 10.0.0.5:41234 -> 10.0.0.9:5432",
			Summary:  "the clearing peer 10.0.0.9:5432 answered 41 ms late",
			Evidence: netIDs,
			Path: []investigate.Step{spanStep("settlement.process", 812300*time.Microsecond), spanStep("clearing.confirm", 60*time.Millisecond),
				{Kind: "tcp_wait", Name: "10.0.0.9:5432", DurationNs: 41 * ms}},
		}},
	}
}

func key(kind, id string) string { return kind + "/" + id }

// Subjects implements investigate.Service.
func (s *Service) Subjects(ctx context.Context, q investigate.SubjectQuery) ([]investigate.Subject, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	kind := q.Kind
	if kind == "" {
		kind = investigate.KindSettlement
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 20
	}
	var out []investigate.Subject
	for _, sub := range s.subjects {
		if sub.Kind != kind || q.FailedOnly && sub.Status != "error" ||
			q.From != 0 && sub.StartNs < q.From || q.To != 0 && sub.StartNs >= q.To {
			continue
		}
		out = append(out, sub)
	}
	slices.SortStableFunc(out, func(a, b investigate.Subject) int { return int(b.DurationNs - a.DurationNs) })
	out = out[:min(limit, len(out))]
	if q.Uncounted {
		out = slices.Clone(out)
		for i := range out {
			out[i].Events, out[i].Comm = investigate.EventsUncounted, ""
		}
	}
	return out, nil
}

// Chain implements investigate.Service: the incident has a chain, every other known
// subject an empty one, and unknown IDs are not found.
func (s *Service) Chain(ctx context.Context, ref investigate.Ref) (investigate.Chain, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kind := ref.Kind
	if kind == "" {
		kind = investigate.KindSettlement
	}
	if c, ok := s.chains[key(kind, ref.ID)]; ok {
		return c, nil
	}
	for _, sub := range s.subjects {
		if sub.Kind == kind && sub.ID == ref.ID || ref.TraceID != "" && sub.TraceID == ref.TraceID {
			return investigate.Chain{Subject: sub}, nil
		}
	}
	return investigate.Chain{}, fmt.Errorf("%s: %w", investigate.RefName(investigate.Ref{Kind: kind, ID: ref.ID, TraceID: ref.TraceID}), investigate.ErrNotFound)
}

// Events implements investigate.Service.
func (s *Service) Events(ctx context.Context, q investigate.EventQuery) ([]event.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []event.Event{}
	for i := range s.events {
		e := &s.events[i]
		if q.Ref.ID != "" && e.Attrs[q.Ref.Kind+".id"] != q.Ref.ID ||
			q.PID != 0 && e.PID != q.PID || q.TID != 0 && e.TID != q.TID ||
			q.From != 0 && e.TsNs < q.From || q.To != 0 && e.TsNs >= q.To ||
			len(q.Types) > 0 && !slices.Contains(q.Types, e.Type) ||
			len(q.IDs) > 0 && !slices.Contains(q.IDs, e.ID) {
			continue
		}
		out = append(out, *e)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

// SyscallLog implements investigate.Service.
func (s *Service) SyscallLog(ctx context.Context, q investigate.SyscallLogQuery) ([]event.Event, error) {
	return s.Events(ctx, investigate.EventQuery{PID: q.PID, From: q.From, To: q.To,
		Types: []event.Type{event.TypeRead, event.TypeWrite}})
}

// Close implements investigate.Service.
func (s *Service) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
