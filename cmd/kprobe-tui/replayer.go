package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/replay"
	"github.com/kprobe/kprobe/ui/common"
)

// engineReplayer runs the workstation's replays with the replay engine, on this machine,
// reading the recording through the use cases.
type engineReplayer struct{ log replay.Log }

// replayer is the replay engine behind the workstation's replay screen.
func replayer(svc investigate.Service) common.Replayer {
	return engineReplayer{log: investigate.ReplayLog(svc)}
}

// Start implements common.Replayer: the program's output, every intercepted syscall and
// the summary, in that order, on one channel closed at the end.
func (e engineReplayer) Start(ctx context.Context, req common.ReplayRequest) (<-chan common.ReplayUpdate, error) {
	if len(req.Program) == 0 {
		return nil, fmt.Errorf("replay: say which program to run in place of the recorded process")
	}
	out := make(chan common.ReplayUpdate, 256)
	pr, pw := io.Pipe()
	run, err := replay.Start(ctx,
		replay.Options{Log: e.log, Query: replay.Query{Node: req.Process.Node, PID: req.Process.PID, From: req.From, To: req.To},
			Tweaks: req.Tweaks, OnDivergence: replay.StopAtDivergence},
		replay.Program{Path: req.Program[0], Args: req.Program[1:], Stdin: bytes.NewReader(nil), Stdout: pw, Stderr: pw})
	if err != nil {
		pw.Close()
		return nil, err
	}
	send := func(u common.ReplayUpdate) {
		select {
		case out <- u:
		case <-ctx.Done():
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 4096)
		for {
			n, err := pr.Read(buf)
			if n > 0 {
				send(common.ReplayUpdate{Output: string(buf[:n])})
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for rec := range run.Trace() {
			send(common.ReplayUpdate{Syscall: &common.TraceLine{Seq: int(rec.Seq), Mark: rec.Kind.String(), Text: traceText(rec)}})
		}
	}()
	go func() {
		defer close(out)
		sum, err := run.Wait()
		pw.Close()
		wg.Wait()
		x := experiment(req, sum)
		if err != nil {
			x.Err = err.Error()
		}
		send(common.ReplayUpdate{Done: &x})
	}()
	return out, nil
}

// traceText is one syscall as the trace pane shows it: write(7) = 262144 ledger.log 211 ms.
func traceText(r replay.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s(", r.Syscall)
	if r.FD >= 0 {
		fmt.Fprint(&b, r.FD)
	}
	fmt.Fprint(&b, ")")
	switch {
	case r.Errno != "":
		fmt.Fprintf(&b, " = -%s", r.Errno)
	case r.Kind != replay.Native:
		fmt.Fprintf(&b, " = %d", r.Result)
	}
	if r.Resource != "" {
		b.WriteString(" " + r.Resource)
	}
	if r.DelayNs > 0 {
		b.WriteString(" " + investigate.HumanDuration(r.DelayNs))
	}
	if r.Tweak != "" {
		b.WriteString(" ← " + r.Tweak)
	}
	if r.Detail != "" {
		b.WriteString(": " + r.Detail)
	}
	return b.String()
}

func experiment(req common.ReplayRequest, s replay.Summary) investigate.Experiment {
	x := investigate.Experiment{Tweaks: req.Tweaks, Timing: req.Timing, ExitCode: s.ExitCode, DurationNs: int64(s.Duration),
		Served: int(s.Served), Native: int(s.Native), Tweaked: int(s.Tweaked)}
	if d := s.Divergence; d != nil {
		x.Divergent = 1
		x.FirstDivergence = d.String()
		if s.Stopped {
			x.FirstDivergence += " (stopped there)"
		}
	}
	return x
}
