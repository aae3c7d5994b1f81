package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// stopGrace is what a stop may take past its drain timeout: the store write in flight at
// the deadline (one batch, which the embedded engine cannot abandon midway), the
// recorder's last decoded batches, drawing the causal engine's pending chains, closing
// the stores and detaching the probes. Each takes well under a second; the rest is
// headroom for a loaded machine.
const stopGrace = 5 * time.Second

// boundedStop bounds a stop as a whole. Its clock starts when the stop is asked for
// (SIGTERM, SIGINT, --duration, the recorded command's exit): atStop runs then, atDeadline
// the drain timeout later, and stopGrace after that the process exits with status 1,
// saying which step it was still waiting for. A store call that never returns (a
// stalled disk) cannot hold a SIGTERM forever; what it abandons is what a crash would,
// which the event log recovers at its next start.
type boundedStop struct {
	log    *slog.Logger
	stderr io.Writer
	step   atomic.Pointer[string]
	since  atomic.Int64 // unix ns of the stop; 0 before
	done   chan struct{}
	grace  time.Duration  // stopGrace; shorter in tests
	exit   func(code int) // os.Exit; replaced in tests
}

func startBoundedStop(ctx context.Context, log *slog.Logger, stderr io.Writer, drain time.Duration, atStop, atDeadline func()) *boundedStop {
	b := newBoundedStop(log, stderr)
	go b.run(ctx, drain, atStop, atDeadline)
	return b
}

func newBoundedStop(log *slog.Logger, stderr io.Writer) *boundedStop {
	b := &boundedStop{log: log, stderr: stderr, done: make(chan struct{}), grace: stopGrace, exit: os.Exit}
	first := "recording" // the step until the first at(): never a nil step to print
	b.step.Store(&first)
	return b
}

func (b *boundedStop) run(ctx context.Context, drain time.Duration, atStop, atDeadline func()) {
	select {
	case <-ctx.Done():
	case <-b.done:
		return
	}
	b.since.Store(time.Now().UnixNano())
	atStop()
	t := time.NewTimer(drain)
	defer t.Stop()
	select {
	case <-t.C:
	case <-b.done:
		return
	}
	b.log.Debug("stop: drain timeout reached", "step", *b.step.Load())
	atDeadline()
	t.Reset(b.grace)
	select {
	case <-t.C:
		fmt.Fprintf(b.stderr, "kprobe-agent: the stop took longer than --drain-timeout %v + %v, still %s: exiting without it (the event log recovers its spool at the next start)\n",
			drain, b.grace, *b.step.Load())
		b.exit(1)
	case <-b.done:
	}
}

// at names the step (nil-safe, as release is: a stop is started once the recorder is
// open) that the stop is in, for the debug log and the line printed if the stop
// overruns.
func (b *boundedStop) at(step string) {
	if b == nil {
		return
	}
	b.step.Store(&step)
	if ns := b.since.Load(); ns != 0 {
		b.log.Debug("stop: "+step, "since_stop", time.Since(time.Unix(0, ns)).Round(time.Millisecond))
	}
}

// release ends the clock: the stop is over.
func (b *boundedStop) release() {
	if b != nil {
		close(b.done)
	}
}
