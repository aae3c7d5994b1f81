package common

import (
	"context"

	"github.com/kprobe/kprobe/pipeline/investigate"
)

// Replayer runs a recorded process again under the replay engine, serving its recorded
// syscalls. It is declared here, where it is consumed; the workstation's entry point
// adapts the replay engine to it.
type Replayer interface {
	// Start begins one run. Updates arrive on the returned channel in order; the last one
	// carries the summary, then the channel is closed. Cancelling ctx stops the run.
	Start(ctx context.Context, req ReplayRequest) (<-chan ReplayUpdate, error)
}

// ReplayRequest says what to replay and how to change it.
type ReplayRequest struct {
	Ref investigate.Ref
	// Process is the recorded process, replayed from its start (its whole recording).
	Process investigate.Process
	// Program is the command run in place of the recorded process (argv).
	Program []string
	// Tweaks are in the replay engine's tweak grammar (replay/tweak):
	// "syscall=write,delay=50ms", "syscall=write,errno=EIO", "timing=x2".
	Tweaks []string
	// Timing is "recorded", "fast" or "xN" (also given in Tweaks as timing=).
	Timing string
}

// Trace marks: what the replay engine did with one syscall.
const (
	MarkServed    = "served"    // answered from the event log
	MarkNative    = "native"    // ran against the kernel
	MarkTweaked   = "tweaked"   // answered, with a tweak applied
	MarkDivergent = "divergent" // the program asked for something the recording does not have
)

// TraceLine is one syscall of a replay as the trace pane shows it.
type TraceLine struct {
	Seq  int
	Mark string // one of the Mark* constants
	Text string // "write(7, 262144) = 262144"
}

// ReplayUpdate is one step of a run: a chunk of the program's output, a syscall, or the
// summary at the end.
type ReplayUpdate struct {
	Output  string
	Syscall *TraceLine
	Done    *investigate.Experiment
}
