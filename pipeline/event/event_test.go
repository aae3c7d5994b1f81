package event

import (
	"encoding/json"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/proto"

	"github.com/kprobe/kprobe/pipeline/event/eventpb"
)

func sample() []Event {
	return []Event{
		{ID: NewID("n1", 10, 7, 1, TypeRead), TsNs: 1_700_000_000_000_000_000, KtimeNs: 10, Node: "n1", PID: 42, TID: 43, CPU: 1,
			Comm: "ledger", CgroupID: 9, Type: TypeRead, DurNs: 1500, Syscall: "pread64", FD: 3, Bytes: 4096, Dev: 0x801, Ino: 77,
			Payload: []byte{0, 1, 2, 'x'}},
		{ID: 2, TsNs: 5, Node: "n1", PID: 42, TID: 42, Type: TypeWrite, Syscall: "write", FD: 1, Errno: 32},
		{ID: 3, TsNs: 6, Node: "n2", PID: 1, TID: 1, Type: TypeTCPSend, Bytes: 100,
			SAddr: netip.MustParseAddr("127.0.0.1"), SPort: 5000, DAddr: netip.MustParseAddr("::1"), DPort: 80,
			TraceID: "abc", SpanID: "def", Service: "svc", SpanName: "ledger.write", Join: "tid",
			Attrs: map[string]string{"settlement.id": "4821", "payment.id": "PAY-98721"}},
		{ID: 4, TsNs: 7, Type: TypeSchedSwitch, DurNs: 9, Preempted: true, NextPID: 5, NextTID: 6, NextComm: "hog", RunqDelayNs: 3},
		{ID: 5, TsNs: 8, Type: TypePageFault, Addr: 0xdead000, IP: 0x401000, ErrorCode: 6, KernelFault: true},
		{ID: 6, TsNs: 9, PID: 42, TID: 44, Type: TypeSyscall, DurNs: 700, Syscall: "openat", FD: -100, Bytes: 3,
			Args: []int64{-100, 0x7ffc0000, 0x80000, 0, 0, 0}, Path: "/etc/ledger.conf"},
		{ID: 7, TsNs: 10, PID: 42, TID: 44, Type: TypeSyscall, Syscall: "connect", FD: 5, Errno: 115,
			Args: []int64{5, 0x7ffc0100, 16}, DAddr: netip.MustParseAddr("10.0.0.7"), DPort: 7000,
			Payload: []byte{2, 0, 0x1b, 0x58, 10, 0, 0, 7}, Truncated: 8},
	}
}

func TestWireRoundTrip(t *testing.T) {
	in := sample()
	data, err := MarshalBatch(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, got, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestUnmarshalBatchRejects(t *testing.T) {
	enc := func(b *eventpb.Batch) []byte {
		t.Helper()
		out, err := proto.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}, "malformed event batch"},
		{"version", enc(&eventpb.Batch{Version: 2}), "schema version 2"},
		{"no version", enc(&eventpb.Batch{Events: []*eventpb.Event{{Type: 1}}}), "schema version 0"},
		{"type", enc(&eventpb.Batch{Version: 1, Events: []*eventpb.Event{{Type: 99}}}), "unknown event type 99"},
		{"addr", enc(&eventpb.Batch{Version: 1, Events: []*eventpb.Event{{Type: 3, Saddr: []byte{1, 2, 3}}}}), "address of 3 bytes"},
		{"port", enc(&eventpb.Batch{Version: 1, Events: []*eventpb.Event{{Type: 3, Sport: 70000}}}), "port out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := UnmarshalBatch(tt.data)
			if !errors.Is(err, ErrBadBatch) {
				t.Fatalf("err = %v, want ErrBadBatch", err)
			}
			if !contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func FuzzUnmarshalBatch(f *testing.F) {
	good, _ := MarshalBatch(sample())
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x08, 0x01, 0x12, 0x02, 0x50, 0x63})
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := UnmarshalBatch(data)
		if err != nil {
			return
		}
		// Whatever decodes must encode again and decode to the same events.
		again, err := MarshalBatch(evs)
		if err != nil {
			t.Fatalf("re-encoding decoded batch: %v", err)
		}
		if _, err := UnmarshalBatch(again); err != nil {
			t.Fatalf("decoding re-encoded batch: %v", err)
		}
	})
}

func TestJSONFields(t *testing.T) {
	evs := sample()
	tests := []struct {
		name string
		ev   Event
		want map[string]any
	}{
		{"read", evs[0], map[string]any{
			"ts_ns": 1.7e18, "id": "", "node": "n1", "pid": 42.0, "tid": 43.0, "cpu": 1.0, "comm": "ledger", "cgroup_id": 9.0,
			"type": "read", "dur_ns": 1500.0, "syscall": "pread64", "fd": 3.0, "bytes": 4096.0, "errno": 0.0,
			"dev": 2049.0, "ino": 77.0, "payload": "AAECeA=="}},
		{"tcp joined", evs[2], map[string]any{
			"ts_ns": 6.0, "id": "3", "node": "n2", "pid": 1.0, "tid": 1.0, "cpu": 0.0, "comm": "", "cgroup_id": 0.0,
			"type": "tcp_send", "dur_ns": 0.0, "bytes": 100.0, "errno": 0.0, "saddr": "127.0.0.1", "sport": 5000.0,
			"daddr": "::1", "dport": 80.0, "trace_id": "abc", "span_id": "def", "service": "svc", "span_name": "ledger.write",
			"join": "tid", "settlement.id": "4821", "payment.id": "PAY-98721"}},
		{"sched", evs[3], map[string]any{
			"ts_ns": 7.0, "id": "4", "node": "", "pid": 0.0, "tid": 0.0, "cpu": 0.0, "comm": "", "cgroup_id": 0.0,
			"type": "sched_switch", "dur_ns": 9.0, "preempted": true, "off_cpu_ns": 9.0, "runq_delay_ns": 3.0,
			"next_pid": 5.0, "next_tid": 6.0, "next_comm": "hog", "waker_pid": 0.0, "waker_tid": 0.0}},
		{"fault", evs[4], map[string]any{
			"ts_ns": 8.0, "id": "5", "node": "", "pid": 0.0, "tid": 0.0, "cpu": 0.0, "comm": "", "cgroup_id": 0.0,
			"type": "page_fault", "dur_ns": 0.0, "addr": float64(0xdead000), "ip": float64(0x401000), "error_code": 6.0, "kernel": true}},
		{"syscall open", evs[5], map[string]any{
			"ts_ns": 9.0, "id": "6", "node": "", "pid": 42.0, "tid": 44.0, "cpu": 0.0, "comm": "", "cgroup_id": 0.0,
			"type": "syscall", "dur_ns": 700.0, "syscall": "openat", "fd": -100.0, "bytes": 3.0, "errno": 0.0,
			"args": []any{-100.0, float64(0x7ffc0000), float64(0x80000), 0.0, 0.0, 0.0}, "path": "/etc/ledger.conf"}},
		{"syscall connect", evs[6], map[string]any{
			"ts_ns": 10.0, "id": "7", "node": "", "pid": 42.0, "tid": 44.0, "cpu": 0.0, "comm": "", "cgroup_id": 0.0,
			"type": "syscall", "dur_ns": 0.0, "syscall": "connect", "fd": 5.0, "bytes": 0.0, "errno": 115.0,
			"args": []any{5.0, float64(0x7ffc0100), 16.0}, "daddr": "10.0.0.7", "dport": 7000.0,
			"truncated": 8.0, "payload": "AgAbWAoAAAc="}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got map[string]any
			line := AppendJSON(nil, &tt.ev)
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatalf("invalid JSON %s: %v", line, err)
			}
			if tt.want["id"] == "" {
				tt.want["id"] = got["id"] // derived hash, checked elsewhere
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestJSONEscapesHostileStrings(t *testing.T) {
	e := Event{Type: TypeRead, Comm: "a\"b\\c\x01\xffé"}
	var got map[string]any
	if err := json.Unmarshal(AppendJSON(nil, &e), &got); err != nil {
		t.Fatal(err)
	}
	if want := "a\"b\\c\x01\uFFFDé"; got["comm"] != want {
		t.Errorf("comm = %q, want %q", got["comm"], want)
	}
}

func TestNewIDStable(t *testing.T) {
	a := NewID("node-a", 123456789, 42, 1, TypeWrite)
	if a != NewID("node-a", 123456789, 42, 1, TypeWrite) {
		t.Fatal("same inputs, different IDs")
	}
	for _, other := range []uint64{
		NewID("node-b", 123456789, 42, 1, TypeWrite),
		NewID("node-a", 123456790, 42, 1, TypeWrite),
		NewID("node-a", 123456789, 43, 1, TypeWrite),
		NewID("node-a", 123456789, 42, 0, TypeWrite),
		NewID("node-a", 123456789, 42, 1, TypeRead),
	} {
		if other == a {
			t.Errorf("distinct events share ID %x", a)
		}
	}
}

func TestTypeNames(t *testing.T) {
	for _, ty := range Types() {
		got, err := ParseType(ty.String())
		if err != nil || got != ty {
			t.Errorf("ParseType(%q) = %v, %v", ty, got, err)
		}
	}
	if _, err := ParseType("bogus"); err == nil {
		t.Error("ParseType(bogus) succeeded")
	}
}

func BenchmarkMarshalBatch(b *testing.B) {
	evs := make([]Event, 1000)
	for i := range evs {
		evs[i] = sample()[i%5] // the kinds the plain recorder emits
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := MarshalBatch(evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}
