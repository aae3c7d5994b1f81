package bpf

import (
	"bytes"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kprobe/kprobe/bpf/bpftest"
)

// Workload parameters (see bpftest/workload.c "all" mode).
const (
	wlBlocks    = 16   // K
	wlBlockSize = 4096 // B
	wlMsgs      = 10   // M (per address family)
	wlMsgSize   = 1000 // S
	wlPages     = 32   // P
	wlSleeps    = 3
	wlSleepMs   = 20
)

func startAllWorkload(t *testing.T) *bpftest.Workload {
	t.Helper()
	return bpftest.Start(t, "all", filepath.Join(t.TempDir(), "data"),
		strconv.Itoa(wlBlocks), strconv.Itoa(wlBlockSize), strconv.Itoa(wlMsgs), strconv.Itoa(wlMsgSize),
		strconv.Itoa(wlPages), strconv.Itoa(wlSleeps), strconv.Itoa(wlSleepMs))
}

func TestProbesWorkload(t *testing.T) {
	needKernel(t)
	w := startAllWorkload(t)
	info := w.Info
	r := openProbes(t, Options{PIDs: []uint32{info.PID}})
	s := startSession(r)
	start := time.Now()
	w.Run(t)
	end := time.Now()
	evs := s.stop(t)

	if len(evs) == 0 {
		t.Fatal("no events recorded")
	}
	clock := r.Clock()
	byType := map[EventType][]Event{}
	for _, e := range evs {
		if e.PID != info.PID {
			t.Fatalf("event from pid %d with pid filter %d: %+v", e.PID, info.PID, e)
		}
		if wall := clock.WallNs(e.KtimeNs); wall < start.UnixNano()-int64(time.Millisecond) || wall > end.UnixNano()+int64(time.Millisecond) {
			t.Errorf("%s event at %v outside run [%v, %v]", e.Type, time.Unix(0, wall), start, end)
		}
		if e.DurNs > uint64(5*time.Second) {
			t.Errorf("%s event with implausible duration %v", e.Type, time.Duration(e.DurNs))
		}
		if e.TID == info.TID {
			byType[e.Type] = append(byType[e.Type], e)
		}
	}

	t.Run("read_write", func(t *testing.T) {
		counts := map[string]int{}
		for _, typ := range []EventType{EventRead, EventWrite} {
			for _, e := range byType[typ] {
				if e.FD != info.FD {
					continue
				}
				counts[e.Syscall]++
				if e.Ret != wlBlockSize || e.Errno != 0 {
					t.Errorf("%s: ret %d errno %d, want %d bytes", e.Syscall, e.Ret, e.Errno, wlBlockSize)
				}
				if e.Dev != info.Dev || e.Ino != info.Ino {
					t.Errorf("%s: dev/ino %d/%d, want %d/%d", e.Syscall, e.Dev, e.Ino, info.Dev, info.Ino)
				}
				if e.DurNs == 0 {
					t.Errorf("%s: zero duration", e.Syscall)
				}
				if (typ == EventRead) != (e.Syscall == "read" || e.Syscall == "pread64" || e.Syscall == "readv") {
					t.Errorf("syscall %s reported as %s", e.Syscall, typ)
				}
				if e.Comm != "workload" {
					t.Errorf("comm %q, want workload", e.Comm)
				}
			}
		}
		want := map[string]int{"pwrite64": wlBlocks, "pread64": wlBlocks, "write": 1, "writev": 1, "read": 1, "readv": 1}
		for sc, n := range want {
			if counts[sc] != n {
				t.Errorf("%s events on fd %d: got %d, want %d", sc, info.FD, counts[sc], n)
			}
		}
	})

	t.Run("tcp", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			addr  netip.Addr
			ports bpftest.PortPair
		}{
			{"ipv4", netip.MustParseAddr("127.0.0.1"), info.V4},
			{"ipv6", netip.IPv6Loopback(), info.V6},
		} {
			t.Run(tc.name, func(t *testing.T) {
				check := func(typ EventType, sport, dport int) {
					t.Helper()
					n := 0
					for _, e := range byType[typ] {
						if int(e.SPort) != sport || int(e.DPort) != dport {
							continue
						}
						n++
						if e.SAddr != tc.addr || e.DAddr != tc.addr {
							t.Errorf("%s: addrs %v -> %v, want %v", typ, e.SAddr, e.DAddr, tc.addr)
						}
						if e.Ret != wlMsgSize {
							t.Errorf("%s: %d bytes, want %d", typ, e.Ret, wlMsgSize)
						}
					}
					if n != wlMsgs {
						t.Errorf("%s events %d->%d: got %d, want %d", typ, sport, dport, n, wlMsgs)
					}
				}
				check(EventTCPSend, tc.ports.Client, tc.ports.Server)
				check(EventTCPRecv, tc.ports.Server, tc.ports.Client)
			})
		}
	})

	t.Run("page_fault", func(t *testing.T) {
		n := 0
		for _, e := range byType[EventPageFault] {
			if e.Addr < info.Region || e.Addr >= info.Region+info.RegionLen {
				continue
			}
			n++
			if e.KernelFault {
				t.Errorf("fault at %#x reported as kernel fault", e.Addr)
			}
			// x86 error code: 0x2 write, 0x4 user mode
			if e.ErrorCode&0x6 != 0x6 {
				t.Errorf("fault at %#x: error code %#x, want write|user", e.Addr, e.ErrorCode)
			}
			if e.IP == 0 {
				t.Errorf("fault at %#x: zero ip", e.Addr)
			}
		}
		if n != wlPages {
			t.Errorf("page faults in region: got %d, want %d", n, wlPages)
		}
	})

	t.Run("sched_switch", func(t *testing.T) {
		// Each sleep keeps the thread off the CPU for its length, but not
		// always in one blocked switch: under load the thread can be
		// preempted between arming the timer and blocking (a preempted
		// switch, then a shorter blocked one, or none if the timer expired
		// meanwhile). So the sleeps show in the total off-CPU time.
		var offCPU uint64
		for _, e := range byType[EventSchedSwitch] {
			if e.DurNs == 0 {
				t.Errorf("sched event with zero off-CPU time: %+v", e)
			}
			offCPU += e.DurNs
			if e.Preempted {
				if e.WakerPID != 0 || e.WakerTID != 0 || e.KernelWakeup || e.RunqDelayNs != e.DurNs {
					t.Errorf("preempted event: waker %d/%d (kernel %v) runq %d dur %d", e.WakerPID, e.WakerTID, e.KernelWakeup, e.RunqDelayNs, e.DurNs)
				}
				continue
			}
			if e.RunqDelayNs > e.DurNs {
				t.Errorf("run-queue delay %d > off-CPU %d", e.RunqDelayNs, e.DurNs)
			}
			if e.NextTID == info.TID {
				t.Errorf("next task is the thread itself: %+v", e)
			}
		}
		// Between arming a timer and blocking, a thread runs microseconds.
		if want := uint64(wlSleeps) * (wlSleepMs - 1) * uint64(time.Millisecond); offCPU < want {
			t.Errorf("off-CPU time %v in %d sched events, want at least %v (%d sleeps of %d ms)",
				time.Duration(offCPU), len(byType[EventSchedSwitch]), time.Duration(want), wlSleeps, wlSleepMs)
			for _, e := range byType[EventSchedSwitch] {
				t.Logf("at %d: off CPU %v, preempted %v, waker %d/%d (kernel %v), next %s",
					e.KtimeNs, time.Duration(e.DurNs), e.Preempted, e.WakerPID, e.WakerTID, e.KernelWakeup, e.NextComm)
			}
		}
	})

	st := r.Stats()
	if st.KernelLost != 0 || st.QueueDropped != 0 || st.DecodeErrors != 0 {
		t.Errorf("unexpected losses: %+v", st)
	}
	if st.ReceivedTotal != uint64(len(evs)) {
		t.Errorf("stats received %d, collected %d", st.ReceivedTotal, len(evs))
	}
}

func TestProbesPayload(t *testing.T) {
	needKernel(t)
	const n = 64
	w := startAllWorkload(t)
	info := w.Info
	r := openProbes(t, Options{PIDs: []uint32{info.PID}, PayloadPIDs: []uint32{info.PID}, PayloadBytes: n})
	s := startSession(r)
	w.Run(t)
	evs := s.stop(t)

	block := func(i int) []byte {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(i*31 + j)
		}
		return b
	}
	preads := 0
	for _, e := range evs {
		if e.Type != EventRead || e.FD != info.FD {
			continue
		}
		switch e.Syscall {
		case "pread64":
			// preads run in block order
			if want := block(preads); !bytes.Equal(e.Payload, want) {
				t.Errorf("pread64 #%d payload %x, want %x", preads, e.Payload, want)
			}
			preads++
		case "read":
			if want := block(0); !bytes.Equal(e.Payload, want) {
				t.Errorf("read payload %x, want %x", e.Payload, want)
			}
		case "readv":
			if len(e.Payload) != 0 {
				t.Errorf("readv carries %d payload bytes, want none", len(e.Payload))
			}
		}
	}
	if preads != wlBlocks {
		t.Errorf("pread64 events: got %d, want %d", preads, wlBlocks)
	}
	for _, e := range evs {
		if e.Type == EventWrite && len(e.Payload) != 0 {
			t.Fatalf("write event carries payload: %+v", e)
		}
	}
}
