package main

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/replay"
	"github.com/kprobe/kprobe/ui/common"
)

// engineReplayer is the replay engine behind the workstation's replay pane, run in the
// replay-pane child (replayworker.go): one replay.Start per run, its program output and
// trace records turned into the pane's updates, its summary into the experiment the
// report keeps.
type engineReplayer struct{ log replay.Log }

func (r engineReplayer) Start(ctx context.Context, req common.ReplayRequest) (<-chan common.ReplayUpdate, error) {
	if len(req.Program) == 0 {
		return nil, fmt.Errorf("no program to run in place of the recorded process")
	}
	tweaks := append([]string(nil), req.Tweaks...)
	if t := req.Timing; t != "" && t != "recorded" && !hasTiming(tweaks) {
		tweaks = append(tweaks, "timing="+t)
	}
	updates := make(chan common.ReplayUpdate, 256)
	out := &paneWriter{ctx: ctx, ch: updates}
	run, err := replay.Start(ctx, replay.Options{
		Log:    r.log,
		Query:  replay.Query{Node: req.Process.Node, PID: req.Process.PID},
		Tweaks: tweaks,
	}, replay.Program{Path: req.Program[0], Args: req.Program[1:], Stdout: out, Stderr: out})
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(updates)
		var divergent int
		for rec := range run.Trace() {
			if rec.Kind == replay.Divergent {
				divergent++
			}
			line := &common.TraceLine{Seq: int(rec.Seq), Mark: rec.Kind.String(), Text: traceText(rec)}
			select {
			case updates <- common.ReplayUpdate{Syscall: line}:
			case <-ctx.Done():
			}
		}
		sum, err := run.Wait()
		x := &investigate.Experiment{Tweaks: req.Tweaks, Timing: req.Timing, ExitCode: sum.ExitCode,
			DurationNs: sum.Duration.Nanoseconds(), Served: int(sum.Served), Native: int(sum.Native),
			Tweaked: int(sum.Tweaked), Divergent: divergent}
		if sum.Divergence != nil {
			x.FirstDivergence = sum.Divergence.String()
		}
		if err != nil {
			x.Err = err.Error()
		}
		select {
		case updates <- common.ReplayUpdate{Done: x}:
		case <-ctx.Done():
		}
	}()
	return updates, nil
}

func hasTiming(tweaks []string) bool {
	for _, t := range tweaks {
		if strings.HasPrefix(strings.TrimSpace(t), "timing=") {
			return true
		}
	}
	return false
}

// traceText renders a record for the trace pane: "read(5) = 64 [socket 10.0.0.7:7000]".
func traceText(r replay.Record) string {
	var b strings.Builder
	b.WriteString(r.Syscall)
	if r.FD >= 0 {
		fmt.Fprintf(&b, "(%d)", r.FD)
	} else {
		b.WriteString("()")
	}
	switch {
	case r.Errno != "":
		b.WriteString(" = -" + r.Errno)
	case r.Kind != replay.Native:
		fmt.Fprintf(&b, " = %d", r.Result)
	}
	if r.Resource != "" {
		b.WriteString(" [" + r.Resource + "]")
	}
	if r.Detail != "" {
		b.WriteString(" " + r.Detail)
	}
	return b.String()
}

// paneWriter hands the program's output to the pane as it comes.
type paneWriter struct {
	mu  sync.Mutex
	ctx context.Context
	ch  chan<- common.ReplayUpdate
}

func (w *paneWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case w.ch <- common.ReplayUpdate{Output: string(p)}:
	case <-w.ctx.Done():
	}
	return len(p), nil
}
