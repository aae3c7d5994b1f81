package recorder

import (
	"context"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/bpf"
	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/event"
)

func TestConvert(t *testing.T) {
	clock := bpf.NewClock()
	lo := netip.MustParseAddr("127.0.0.1")
	tests := []struct {
		name string
		in   bpf.Event
		want event.Event
	}{
		{"read ok", bpf.Event{Type: bpf.EventRead, PID: 1, TID: 2, Syscall: "pread64", FD: 3, Ret: 100, Dev: 8, Ino: 9, Payload: []byte("x")},
			event.Event{Type: event.TypeRead, PID: 1, TID: 2, Syscall: "pread64", FD: 3, Bytes: 100, Dev: 8, Ino: 9, Payload: []byte("x")}},
		{"write failed", bpf.Event{Type: bpf.EventWrite, Syscall: "write", FD: 1, Ret: -32},
			event.Event{Type: event.TypeWrite, Syscall: "write", FD: 1, Errno: 32}},
		{"tcp", bpf.Event{Type: bpf.EventTCPSend, Ret: 10, SAddr: lo, SPort: 1, DAddr: lo, DPort: 2},
			event.Event{Type: event.TypeTCPSend, Bytes: 10, SAddr: lo, SPort: 1, DAddr: lo, DPort: 2}},
		{"sched", bpf.Event{Type: bpf.EventSchedSwitch, DurNs: 5, Preempted: true, NextPID: 7, NextTID: 8, NextComm: "hog", RunqDelayNs: 4},
			event.Event{Type: event.TypeSchedSwitch, DurNs: 5, Preempted: true, NextPID: 7, NextTID: 8, NextComm: "hog", RunqDelayNs: 4}},
		{"fault", bpf.Event{Type: bpf.EventPageFault, Addr: 1, IP: 2, ErrorCode: 6, KernelFault: true},
			event.Event{Type: event.TypePageFault, Addr: 1, IP: 2, ErrorCode: 6, KernelFault: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.KtimeNs = 1000
			var got event.Event
			Convert("n1", clock, &tt.in, &got)
			tt.want.KtimeNs, tt.want.Node = 1000, "n1"
			tt.want.TsNs = clock.WallNs(1000)
			tt.want.ID = event.NewID("n1", 1000, tt.in.TID, tt.in.CPU, tt.want.Type)
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestPublishGroupsByTopicAndProcess(t *testing.T) {
	mem := bus.NewMemory(16)
	p := NewPublish(mem, 2, "x.")
	evs := []event.Event{
		{ID: 1, Node: "n", PID: 1, Type: event.TypeWrite},
		{ID: 2, Node: "n", PID: 2, Type: event.TypeWrite},
		{ID: 3, Node: "n", PID: 1, Type: event.TypeSchedSwitch},
		{ID: 4, Node: "n", PID: 1, Type: event.TypeRead},
		{ID: 5, Node: "n", PID: 1, Type: event.TypeWrite},
	}
	if err := p.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	mem.Close()
	got := map[string][]uint64{}
	for {
		m, err := mem.Fetch(context.Background())
		if err != nil {
			break
		}
		batch, err := event.UnmarshalBatch(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range batch {
			if string(m.Key) != string(e.Key()) {
				t.Errorf("event %d under key %q, want %q", e.ID, m.Key, e.Key())
			}
			got[m.Topic] = append(got[m.Topic], e.ID)
		}
	}
	want := map[string][]uint64{"x.kernel.syscall": {1, 4, 5, 2}, "x.kernel.sched": {3}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if sent, dropped := p.Stats(); sent != 5 || dropped != 0 {
		t.Errorf("sent %d dropped %d, want 5 and 0", sent, dropped)
	}
	// A full publisher drops and counts; Write never blocks.
	full := bus.NewMemory(1)
	p = NewPublish(full, 1, "")
	if err := p.Write(context.Background(), evs[:3]); err != nil {
		t.Fatal(err)
	}
	if sent, dropped := p.Stats(); sent != 1 || dropped != 2 {
		t.Errorf("full bus: sent %d dropped %d, want 1 and 2", sent, dropped)
	}
}

func TestFromLauncherSkipsUntilExec(t *testing.T) {
	r := &Recorder{launcherPID: 7, launcherComm: "kprobe-agent"}
	steps := []struct {
		e    bpf.Event
		skip bool
	}{
		{bpf.Event{PID: 8, Comm: "kprobe-agent"}, false}, // another process
		{bpf.Event{PID: 7, Comm: "kprobe-agent"}, true},  // the launcher, before exec
		{bpf.Event{PID: 7, Comm: "dd"}, false},           // the exec'd command
		{bpf.Event{PID: 7, Comm: "kprobe-agent"}, false}, // after exec: the command's, whatever its name
	}
	for i, s := range steps {
		if got := r.fromLauncher(&s.e); got != s.skip {
			t.Errorf("step %d (%+v): skipped = %v, want %v", i, s.e, got, s.skip)
		}
	}
	if r.launcher.Load() != 1 {
		t.Errorf("counted %d launcher events, want 1", r.launcher.Load())
	}
}

// TestTypeOfCoversEveryType: every probe type maps to its own pipeline type,
// within the per-type counters; the flight recorder makes the last.
func TestTypeOfCoversEveryType(t *testing.T) {
	var got []event.Type
	for _, bt := range bpf.EventTypes() {
		typ := typeOf(bt)
		if int(typ) >= event.NumTypes {
			t.Errorf("%s maps to %d, beyond the %d counters", bt, typ, event.NumTypes)
		}
		got = append(got, typ)
	}
	got = append(got, event.TypeSyscall) // the flight recorder's (ConvertFlight)
	if diff := cmp.Diff(event.Types(), got); diff != "" {
		t.Errorf("pipeline types of the probe types (-want +got):\n%s", diff)
	}
}
