package convert

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/proto"

	kprobev1 "github.com/kprobe/kprobe/api/kprobe/v1"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

func fullEvent() event.Event {
	return event.Event{
		ID: 1<<63 + 7, TsNs: 1_790_000_000_123_456_789, KtimeNs: 99, Node: "n1", PID: 42, TID: 43, CPU: 1,
		Comm: "settle", CgroupID: 5, Type: event.TypeTCPSend, DurNs: 1500,
		Syscall: "write", FD: 7, Bytes: 512, Errno: 0, Dev: 8, Ino: 9,
		SAddr: netip.MustParseAddr("10.0.0.1"), DAddr: netip.MustParseAddr("2001:db8::1"), SPort: 40000, DPort: 5432,
		Preempted: true, NextPID: 11, NextTID: 12, NextComm: "noisy", WakerPID: 13, WakerTID: 14, RunqDelayNs: 15,
		Addr: 0xdead, IP: 0xbeef, ErrorCode: 6, KernelFault: true, Payload: []byte("hello"),
		TraceID: "t1", SpanID: "s1", Service: "svc", SpanName: "ledger.post", Join: "tid",
		Attrs: map[string]string{"settlement.id": "4821"},
		Args:  []int64{7, -1, 1 << 40}, Path: "/etc/rates", Truncated: 3,
	}
}

func TestEventRoundTrip(t *testing.T) {
	for _, want := range []event.Event{fullEvent(), {Type: event.TypeRead}} {
		// Through the wire too, so what a client decodes is what the server meant.
		b, err := proto.Marshal(EventToPB(&want))
		if err != nil {
			t.Fatal(err)
		}
		var p kprobev1.Event
		if err := proto.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		got, err := EventFromPB(&p)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Addr{})); d != "" {
			t.Errorf("event round trip (-want +got):\n%s", d)
		}
	}
}

func TestEventFromPBRejects(t *testing.T) {
	for name, p := range map[string]*kprobev1.Event{
		"unknown type": {Type: "teleport"},
		"bad address":  {Type: "tcp_send", Saddr: "10.0.0.300"},
		"big port":     {Type: "tcp_send", Dport: 70000},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := EventFromPB(p); err == nil {
				t.Fatalf("EventFromPB(%v) accepted it", p)
			}
		})
	}
}

func TestChainRoundTrip(t *testing.T) {
	want := investigate.Chain{
		Subject: investigate.Subject{Kind: "settlement", ID: "4821", StartNs: 1, DurationNs: 900, Status: "error",
			TraceID: "t", Service: "s", Node: "n", PID: 3, Comm: "c", Spans: 4, Events: 5},
		Causes: []investigate.Cause{{
			Rank: 1, Kind: investigate.CauseCPUContention, ExplainedNs: 600, Share: 0.66, Confidence: 0.9,
			Join: "tid", Rule: "runq", WhatIfNs: 300, Process: &investigate.Process{Node: "n", PID: 9, Comm: "noisy"},
			Resource: "cpu 1", Summary: "preempted", Evidence: []string{"1", "2"},
			Path: []investigate.Step{{Kind: "span", Name: "ledger.post", DurationNs: 800},
				{Kind: "cpu", Name: "cpu 1", Process: &investigate.Process{PID: 9}, Detail: "d"}},
		}},
	}
	got := ChainFromPB(ChainToPB(&want))
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("chain round trip (-want +got):\n%s", d)
	}
}

func TestRefRoundTrip(t *testing.T) {
	for _, want := range []investigate.Ref{
		{Kind: investigate.KindSettlement, ID: "4821"},
		{Kind: investigate.KindPayment, ID: "PAY-1"},
		{Kind: investigate.KindClearingWindow, ID: "w9"},
		{TraceID: "abc"},
	} {
		for _, m := range []proto.Message{&kprobev1.GetChainRequest{}, &kprobev1.GetReportRequest{}, &kprobev1.SubjectRef{}} {
			if err := SetRef(m, want); err != nil {
				t.Fatal(err)
			}
			got, err := RefOf(m)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("%T ref round trip (-want +got):\n%s", m, d)
			}
		}
	}
	if _, err := RefOf(&kprobev1.GetChainRequest{}); err == nil {
		t.Error("RefOf accepted a request naming no subject")
	}
	if _, err := RefOf(&kprobev1.GetChainRequest{Ref: &kprobev1.GetChainRequest_SettlementId{}}); err == nil {
		t.Error("RefOf accepted an empty settlement id")
	}
	if _, err := RefOf(&kprobev1.GetChainRequest{Ref: &kprobev1.GetChainRequest_Business{Business: &kprobev1.BusinessRef{Id: "x"}}}); err == nil {
		t.Error("RefOf accepted a business reference without a kind")
	}
}

// FuzzEventFromPB: whatever bytes a server sends, decoding gives an event or an error,
// and an accepted event encodes back to the same message.
func FuzzEventFromPB(f *testing.F) {
	e := fullEvent()
	b, _ := proto.Marshal(EventToPB(&e))
	f.Add(b)
	f.Add([]byte{0x52, 0x03, 'b', 'a', 'd'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p kprobev1.Event
		if proto.Unmarshal(b, &p) != nil {
			return
		}
		got, err := EventFromPB(&p)
		if err != nil {
			return
		}
		back := EventToPB(&got)
		again, err := EventFromPB(back)
		if err != nil {
			t.Fatalf("re-decoding an accepted event: %v", err)
		}
		if d := cmp.Diff(got, again, cmpopts.EquateComparable(netip.Addr{}), cmpopts.EquateEmpty()); d != "" {
			t.Errorf("accepted event does not round trip (-first +second):\n%s", d)
		}
	})
}
