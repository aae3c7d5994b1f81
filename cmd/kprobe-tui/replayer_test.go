package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/replay"
	"github.com/kprobe/kprobe/ui/common"
)

// The workstation's replays run on the real engine (ptrace, seccomp): the program's
// output, its syscalls and the summary arrive on one stream, the summary last.
func TestEngineReplayerStreamsARun(t *testing.T) {
	if testing.Short() {
		t.Skip("needs ptrace and seccomp user notification: not in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (ptrace, seccomp user notification)")
	}
	r := engineReplayer{log: replay.Events(nil)} // an empty recording: every call runs natively
	ch, err := r.Start(context.Background(), common.ReplayRequest{
		Process: investigate.Process{PID: 4242},
		Program: []string{"sh", "-c", "echo replayed; exit 3"},
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
	if syscalls == 0 || done.Native == 0 {
		t.Errorf("%d syscalls traced, %d native in the summary: want both > 0", syscalls, done.Native)
	}
}

func TestEngineReplayerNeedsAProgram(t *testing.T) {
	_, err := engineReplayer{log: replay.Events(nil)}.Start(context.Background(), common.ReplayRequest{})
	if err == nil || !strings.Contains(err.Error(), "which program") {
		t.Fatalf("err = %v", err)
	}
}
