package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kprobe/kprobe/pipeline/dataset"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/replay"
	"github.com/kprobe/kprobe/ui/common"
)

// From the real flight recorder to the workstation's replay pane: a program recorded by
// the agent replays on the engine, its output, syscalls and summary on one stream, the
// summary last.
func TestReplayerReplaysAFlightRecording(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ptrace and seccomp user notification: not in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (ptrace, seccomp user notification)")
	}
	// Record the program with the real agent's flight recorder, then replay it.
	program := []string{"/bin/sh", "-c", "echo replayed; exit 3"}
	out := filepath.Join(t.TempDir(), "events.jsonl")
	rec := exec.Command(filepath.Join(bins(t), "kprobe-agent"), append([]string{"record", "--flight-recorder", "--output", out, "--"}, program...)...)
	// The recorder ends with the recorded command's failure (its exit 3).
	if b, err := rec.CombinedOutput(); err != nil && !strings.Contains(string(b), "recorded command: exit status 3") {
		t.Fatalf("recording: %v\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := dataset.ReadJSONL(f)
	if err != nil {
		t.Fatal(err)
	}
	var pid uint32
	for _, e := range evs {
		if e.Type == event.TypeSyscall {
			pid = e.PID
			break
		}
	}
	if pid == 0 {
		t.Fatalf("the flight recorder kept no syscall of %v (%d events)", program, len(evs))
	}
	r := engineReplayer{log: replay.Events(evs)}
	ch, err := r.Start(context.Background(), common.ReplayRequest{
		Process: investigate.Process{PID: pid},
		Program: program,
	})
	if err != nil {
		t.Fatal(err)
	}
	var output strings.Builder
	var syscalls int
	var done *investigate.Experiment
	for u := range ch {
		if done != nil {
			t.Fatalf("an update after the summary: %+v", u)
		}
		switch {
		case u.Done != nil:
			done = u.Done
		case u.Syscall != nil:
			syscalls++
		default:
			output.WriteString(u.Output)
		}
	}
	if done == nil {
		t.Fatal("the stream closed without a summary")
	}
	if done.ExitCode != 3 || done.Err != "" {
		t.Errorf("summary %+v: want exit 3 and no error", done)
	}
	if !strings.Contains(output.String(), "replayed") {
		t.Errorf("output %q lacks the program's line", output.String())
	}
	if syscalls == 0 || done.Served == 0 {
		t.Errorf("%d syscalls traced, %d served from the recording: want both > 0 (%+v)", syscalls, done.Served, done)
	}
}
