package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui/common"
)

// memoryLog is a Service that answers SyscallLog from events in memory: the pane's
// adapter needs nothing else of it.
type memoryLog struct {
	investigate.Service
	evs []event.Event
}

func (s memoryLog) SyscallLog(context.Context, investigate.SyscallLogQuery) ([]event.Event, error) {
	return s.evs, nil
}

// TestReplayPaneGetsOutputTraceAndSummary: the workstation's replay pane gets the
// program's output, the marked trace and the experiment, from the real engine in the
// replay-pane child.
func TestReplayPaneGetsOutputTraceAndSummary(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("runs the replay engine: needs root (ptrace, seccomp), not in -short")
	}
	path := filepath.Join(t.TempDir(), "rates.txt")
	os.WriteFile(path, []byte("9.99\n"), 0o644)
	const pid = 4242
	prod := []byte("1.25\n")
	evs := []event.Event{
		{Type: event.TypeSyscall, PID: pid, TID: pid, KtimeNs: 1, Syscall: "openat", FD: -100, Bytes: 3, Path: path, Args: []int64{-100, 0, unix.O_RDONLY}},
		{Type: event.TypeSyscall, PID: pid, TID: pid, KtimeNs: 2, Syscall: "read", FD: 3, Bytes: int64(len(prod)), Payload: prod, Args: []int64{3, 0, 131072}},
		{Type: event.TypeSyscall, PID: pid, TID: pid, KtimeNs: 3, Syscall: "read", FD: 3, Args: []int64{3, 0, 131072}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := workerReplayer{svc: memoryLog{evs: evs}, exe: filepath.Join(bins(t), "kprobe-tui")}
	ch, err := r.Start(ctx, common.ReplayRequest{
		Process: investigate.Process{PID: pid}, Program: []string{"cat", path}, Timing: "fast"})
	if err != nil {
		t.Fatal(err)
	}
	var output string
	var served []string
	var done *investigate.Experiment
	for u := range ch {
		output += u.Output
		if u.Syscall != nil && u.Syscall.Mark == common.MarkServed {
			served = append(served, u.Syscall.Text)
		}
		if u.Done != nil {
			done = u.Done
		}
	}
	if output != string(prod) {
		t.Errorf("pane output %q, want production's %q", output, prod)
	}
	if len(served) != 3 || !strings.HasPrefix(served[1], "read(3) = 5 [file "+path+"]") {
		t.Errorf("served lines %q", served)
	}
	if done == nil || done.ExitCode != 0 || done.Served != 3 || done.Err != "" || done.Timing != "fast" {
		t.Errorf("experiment %+v", done)
	}
}

// A worker that dies before its summary still ends the run, with what it said.
func TestReplayWorkerDiesWithoutSummary(t *testing.T) {
	dir := t.TempDir()
	worker := filepath.Join(dir, "worker")
	if err := os.WriteFile(worker, []byte("#!/bin/sh\necho 'replay-pane: out of luck' >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := workerReplayer{svc: memoryLog{}, exe: worker}
	ch, err := r.Start(context.Background(), common.ReplayRequest{Process: investigate.Process{PID: 1},
		Program: []string{"true"}, Tweaks: []string{"timing=fast"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []common.ReplayUpdate
	for u := range ch {
		got = append(got, u)
	}
	want := []common.ReplayUpdate{{Done: &investigate.Experiment{Tweaks: []string{"timing=fast"},
		Err: "the replay ended without a summary: replay-pane: out of luck"}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("updates (-want +got):\n%s", diff)
	}
}
