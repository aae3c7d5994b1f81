package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// TestEventLayout pins decode.go's offsets to the bpf2go-generated struct.
func TestEventLayout(t *testing.T) {
	var e bpfEvent
	got := map[string]uintptr{
		"ts": unsafe.Offsetof(e.TsNs), "dur": unsafe.Offsetof(e.DurNs), "cgroup": unsafe.Offsetof(e.CgroupId),
		"pid": unsafe.Offsetof(e.Pid), "tid": unsafe.Offsetof(e.Tid), "cpu": unsafe.Offsetof(e.Cpu),
		"type": unsafe.Offsetof(e.Type), "syscall": unsafe.Offsetof(e.Syscall), "flags": unsafe.Offsetof(e.Flags),
		"comm": unsafe.Offsetof(e.Comm), "ret": unsafe.Offsetof(e.Ret), "fd": unsafe.Offsetof(e.Fd),
		"err": unsafe.Offsetof(e.Err), "dev": unsafe.Offsetof(e.Dev), "ino": unsafe.Offsetof(e.Ino),
		"saddr": unsafe.Offsetof(e.Saddr), "daddr": unsafe.Offsetof(e.Daddr), "sport": unsafe.Offsetof(e.Sport),
		"dport": unsafe.Offsetof(e.Dport), "family": unsafe.Offsetof(e.Family), "payload_len": unsafe.Offsetof(e.PayloadLen),
		"next_pid": unsafe.Offsetof(e.NextPid), "next_tid": unsafe.Offsetof(e.NextTid), "waker_pid": unsafe.Offsetof(e.WakerPid),
		"waker_tid": unsafe.Offsetof(e.WakerTid), "runq": unsafe.Offsetof(e.RunqNs), "next_comm": unsafe.Offsetof(e.NextComm),
		"addr": unsafe.Offsetof(e.Addr), "ip": unsafe.Offsetof(e.Ip), "error_code": unsafe.Offsetof(e.ErrorCode),
		"size": unsafe.Sizeof(e),
	}
	want := map[string]uintptr{
		"ts": offTs, "dur": offDur, "cgroup": offCgroup, "pid": offPid, "tid": offTid, "cpu": offCPU,
		"type": offType, "syscall": offSyscall, "flags": offFlags, "comm": offComm, "ret": offRet, "fd": offFd,
		"err": offErr, "dev": offDev, "ino": offIno, "saddr": offSaddr, "daddr": offDaddr, "sport": offSport,
		"dport": offDport, "family": offFamily, "payload_len": offPayloadLen, "next_pid": offNextPid,
		"next_tid": offNextTid, "waker_pid": offWakerPid, "waker_tid": offWakerTid, "runq": offRunq,
		"next_comm": offNextComm, "addr": offAddr, "ip": offIP, "error_code": offErrorCode, "size": eventSize,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("struct event layout (-want +got):\n%s", diff)
	}
}

func comm16(s string) [16]int8 {
	var c [16]int8
	for i := 0; i < len(s) && i < 15; i++ {
		c[i] = int8(s[i])
	}
	return c
}

// sample encodes e as the kernel would, followed by payload.
func sample(t testing.TB, e bpfEvent, payload []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	e.PayloadLen = uint16(len(payload))
	if err := binary.Write(&buf, binary.LittleEndian, &e); err != nil {
		t.Fatal(err)
	}
	buf.Write(payload)
	return buf.Bytes()
}

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

func decodeCases(t testing.TB) []struct {
	name string
	raw  []byte
	want Event
} {
	v6s := netip.MustParseAddr("2001:db8::1")
	v6d := netip.MustParseAddr("2001:db8::2")
	return []struct {
		name string
		raw  []byte
		want Event
	}{
		{
			name: "pread64 with payload",
			raw: sample(t, bpfEvent{
				TsNs: 100, DurNs: 5, CgroupId: 7, Pid: 10, Tid: 11, Cpu: 1, Type: uint8(EventRead), Syscall: 2,
				Comm: comm16("postgres"), Ret: 4096, Fd: 3, Dev: 254<<20 | 1, Ino: 99,
			}, []byte("hello")),
			want: Event{
				KtimeNs: 100, DurNs: 5, PID: 10, TID: 11, CPU: 1, Comm: "postgres", CgroupID: 7, Type: EventRead,
				Syscall: "pread64", FD: 3, Ret: 4096, Dev: unix.Mkdev(254, 1), Ino: 99, Payload: []byte("hello"),
			},
		},
		{
			name: "write error",
			raw: sample(t, bpfEvent{
				Type: uint8(EventWrite), Syscall: 4, Comm: comm16("x"), Ret: -9, Err: 9, Fd: 42,
			}, nil),
			want: Event{Type: EventWrite, Syscall: "write", Comm: "x", FD: 42, Ret: -9, Errno: 9},
		},
		{
			name: "tcp send ipv4",
			raw: sample(t, bpfEvent{
				Type: uint8(EventTCPSend), Comm: comm16("curl"), Ret: 1000, Fd: -1, Family: afInet,
				Saddr: [16]byte{127, 0, 0, 1}, Daddr: [16]byte{10, 1, 2, 3}, Sport: 40000, Dport: 443,
			}, nil),
			want: Event{
				Type: EventTCPSend, Comm: "curl", FD: -1, Ret: 1000,
				SAddr: netip.MustParseAddr("127.0.0.1"), DAddr: netip.MustParseAddr("10.1.2.3"), SPort: 40000, DPort: 443,
			},
		},
		{
			name: "tcp recv ipv6",
			raw: sample(t, bpfEvent{
				Type: uint8(EventTCPRecv), Ret: 10, Fd: -1, Family: afInet6, Saddr: v6s.As16(), Daddr: v6d.As16(), Sport: 1, Dport: 2,
			}, nil),
			want: Event{Type: EventTCPRecv, FD: -1, Ret: 10, SAddr: v6s, DAddr: v6d, SPort: 1, DPort: 2},
		},
		{
			name: "sched switch blocked",
			raw: sample(t, bpfEvent{
				Type: uint8(EventSchedSwitch), DurNs: 20e6, Fd: -1, Comm: comm16("app"), NextPid: 0, NextTid: 0,
				NextComm: comm16("swapper/1"), WakerPid: 5, WakerTid: 6, RunqNs: 3000,
			}, nil),
			want: Event{
				Type: EventSchedSwitch, DurNs: 20e6, FD: -1, Comm: "app", NextComm: "swapper/1",
				WakerPID: 5, WakerTID: 6, RunqDelayNs: 3000,
			},
		},
		{
			name: "sched switch woken by the kernel",
			raw: sample(t, bpfEvent{
				Type: uint8(EventSchedSwitch), DurNs: 10e6, Flags: flagKernelWakeup, Fd: -1, Comm: comm16("app"),
				NextComm: comm16("swapper/0"), RunqNs: 2000,
			}, nil),
			want: Event{
				Type: EventSchedSwitch, DurNs: 10e6, FD: -1, Comm: "app", NextComm: "swapper/0",
				KernelWakeup: true, RunqDelayNs: 2000,
			},
		},
		{
			name: "sched switch preempted",
			raw: sample(t, bpfEvent{
				Type: uint8(EventSchedSwitch), DurNs: 700, Flags: flagPreempted, Fd: -1, NextPid: 9, NextTid: 10,
				NextComm: comm16("0123456789abcde"), RunqNs: 700,
			}, nil),
			want: Event{
				Type: EventSchedSwitch, DurNs: 700, FD: -1, Preempted: true, NextPID: 9, NextTID: 10,
				NextComm: "0123456789abcde", RunqDelayNs: 700,
			},
		},
		{
			name: "kernel page fault",
			raw: sample(t, bpfEvent{
				Type: uint8(EventPageFault), Fd: -1, Flags: flagKernelFault, Addr: 0x7f0000001000, Ip: 0xffffffff81000000, ErrorCode: 2,
			}, nil),
			want: Event{Type: EventPageFault, FD: -1, Addr: 0x7f0000001000, IP: 0xffffffff81000000, ErrorCode: 2, KernelFault: true},
		},
	}
}

func TestDecode(t *testing.T) {
	for _, tc := range decodeCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			var got Event
			if err := Decode(tc.raw, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, addrCmp); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeReusesEvent(t *testing.T) {
	cases := decodeCases(t)
	var e Event
	if err := Decode(cases[0].raw, &e); err != nil { // has payload
		t.Fatal(err)
	}
	if err := Decode(cases[2].raw, &e); err != nil { // no payload
		t.Fatal(err)
	}
	if diff := cmp.Diff(cases[2].want, e, addrCmp); diff != "" {
		t.Errorf("stale fields after reuse (-want +got):\n%s", diff)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := sample(t, bpfEvent{Type: uint8(EventRead), Syscall: 1}, nil)
	mut := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	tests := []struct {
		name string
		raw  []byte
		want error
	}{
		{"empty", nil, ErrShortEvent},
		{"short", good[:eventSize-1], ErrShortEvent},
		{"type zero", mut(func(b []byte) { b[offType] = 0 }), ErrBadEvent},
		{"type too big", mut(func(b []byte) { b[offType] = 200 }), ErrBadEvent},
		{"bad syscall", mut(func(b []byte) { b[offSyscall] = 99 }), ErrBadEvent},
		{"payload beyond sample", mut(func(b []byte) { binary.LittleEndian.PutUint16(b[offPayloadLen:], 10) }), ErrBadEvent},
		{"payload over max", append(mut(func(b []byte) { binary.LittleEndian.PutUint16(b[offPayloadLen:], MaxPayload+1) }), make([]byte, MaxPayload+1)...), ErrBadEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Event
			if err := Decode(tt.raw, &e); !errors.Is(err, tt.want) {
				t.Errorf("Decode error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEventTypeString(t *testing.T) {
	var got []string
	for _, typ := range append(EventTypes(), 0, 99) {
		got = append(got, typ.String())
	}
	want := []string{"read", "write", "tcp_send", "tcp_recv", "sched_switch", "page_fault", "unknown", "unknown"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("String (-want +got):\n%s", diff)
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases(f) {
		f.Add(tc.raw)
	}
	f.Add([]byte{})
	f.Add(make([]byte, eventSize))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var e Event
		err := Decode(raw, &e)
		if err == nil {
			if len(raw) < eventSize {
				t.Fatalf("accepted %d-byte sample", len(raw))
			}
			if len(e.Payload) > MaxPayload || len(e.Payload) > len(raw)-eventSize {
				t.Fatalf("payload of %d bytes from %d-byte sample", len(e.Payload), len(raw))
			}
			if e.Type.String() == "unknown" {
				t.Fatalf("accepted unknown type %d", e.Type)
			}
		}
	})
}

func TestRestartedSample(t *testing.T) {
	tests := []struct {
		e    bpfEvent
		want bool
	}{
		{bpfEvent{Type: uint8(EventRead), Syscall: 1, Ret: -512, Err: 512}, true},
		{bpfEvent{Type: uint8(EventWrite), Syscall: 4, Ret: -516, Err: 516}, true},
		{bpfEvent{Type: uint8(EventRead), Syscall: 1, Ret: -4, Err: 4}, false}, // EINTR is what the program saw
		{bpfEvent{Type: uint8(EventRead), Syscall: 1, Ret: 512}, false},        // 512 bytes read
		{bpfEvent{Type: uint8(EventTCPRecv), Ret: -512, Err: 512}, false},
	}
	for _, tt := range tests {
		raw := sample(t, tt.e, nil)
		typ, err := checkSample(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := restartedSample(typ, raw); got != tt.want {
			t.Errorf("restartedSample(%+v) = %v, want %v", tt.e, got, tt.want)
		}
	}
}

// TestEventTypesMatchProbes pins the Go event types to enum event_type in
// probes/event.h, as bpf2go generated it, and the per-type arrays to its
// size (the kernel's lost counters have EV_MAX entries).
func TestEventTypesMatchProbes(t *testing.T) {
	want := []bpfEventType{
		bpfEventTypeEV_READ, bpfEventTypeEV_WRITE, bpfEventTypeEV_TCP_SEND,
		bpfEventTypeEV_TCP_RECV, bpfEventTypeEV_SCHED_SWITCH, bpfEventTypeEV_PAGE_FAULT,
	}
	var got []bpfEventType
	for _, typ := range EventTypes() {
		got = append(got, bpfEventType(typ))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("event types (-want +got):\n%s", diff)
	}
	if numEventTypes != int(bpfEventTypeEV_MAX) {
		t.Errorf("numEventTypes %d, EV_MAX %d", numEventTypes, bpfEventTypeEV_MAX)
	}
	spec, err := loadBpf()
	if err != nil {
		t.Fatal(err)
	}
	var specs bpfSpecs
	if err := spec.Assign(&specs); err != nil {
		t.Fatal(err)
	}
	if n := specs.Lost.MaxEntries; n != uint32(numEventTypes) {
		t.Errorf("lost counters: %d entries, want %d", n, numEventTypes)
	}
}
