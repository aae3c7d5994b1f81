package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/kprobe/kprobe/pipeline/dataset"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/replay"
	"github.com/kprobe/kprobe/ui/common"
)

// workerReplayer runs each of the workstation's replays in a child process (kprobe-tui
// replay-pane), never in the workstation itself: the workstation may hold the embedded
// engine, a C++ library that resets the fatal-signal handlers and alternate signal
// stacks of the threads it runs on, and the tracer locked to one of those threads then
// dies of the next signal it gets (SIGSEGV, no Go trace). The workstation reads the
// recording through its own source and hands it to the child with the request; the
// child answers with the pane's updates, one JSON object a line.
type workerReplayer struct {
	svc investigate.Service
	exe string // kprobe-tui itself; "": this executable
}

func (r workerReplayer) Start(ctx context.Context, req common.ReplayRequest) (<-chan common.ReplayUpdate, error) {
	if len(req.Program) == 0 {
		return nil, fmt.Errorf("no program to run in place of the recorded process")
	}
	evs, err := r.svc.SyscallLog(ctx, investigate.SyscallLogQuery{Node: req.Process.Node, PID: req.Process.PID})
	if err != nil {
		return nil, fmt.Errorf("reading the recording of pid %d: %w", req.Process.PID, err)
	}
	in, err := workerInput(req, evs)
	if err != nil {
		return nil, err
	}
	exe := r.exe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("finding kprobe-tui to run the replay: %w", err)
		}
	}
	cmd := exec.CommandContext(ctx, exe, "replay-pane")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the replay: %w", err)
	}
	updates := make(chan common.ReplayUpdate, 256)
	go func() {
		defer close(updates)
		done := false
		dec := json.NewDecoder(bufio.NewReader(out))
		for {
			var u common.ReplayUpdate
			if err := dec.Decode(&u); err != nil {
				break
			}
			done = done || u.Done != nil
			select {
			case updates <- u:
			case <-ctx.Done():
			}
		}
		werr := cmd.Wait()
		if done || ctx.Err() != nil {
			return
		}
		// The worker died before its summary: say how, in its own last words.
		why := strings.TrimPrefix(lastLine(stderr.String()), "kprobe-tui: ")
		if why == "" && werr != nil {
			why = werr.Error()
		}
		x := &investigate.Experiment{Tweaks: req.Tweaks, Timing: req.Timing, Err: "the replay ended without a summary: " + why}
		select {
		case updates <- common.ReplayUpdate{Done: x}:
		case <-ctx.Done():
		}
	}()
	return updates, nil
}

// workerInput is what the child reads on stdin: the request on one line, then the
// recording as the recorder's jsonl.
func workerInput(req common.ReplayRequest, evs []event.Event) ([]byte, error) {
	head, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	buf := append(head, '\n')
	for i := range evs {
		buf = append(event.AppendJSON(buf, &evs[i]), '\n')
	}
	return buf, nil
}

// runReplayPane is the child side (kprobe-tui replay-pane; the workstation starts it,
// people do not): one replay on the engine, its updates on stdout. A replay that cannot
// start is a summary with its error, as the pane shows it.
func runReplayPane(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	in := bufio.NewReader(stdin)
	head, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("replay-pane: reading the request: %w", err)
	}
	var req common.ReplayRequest
	if err := json.Unmarshal(head, &req); err != nil {
		return fmt.Errorf("replay-pane: the request: %w", err)
	}
	evs, err := dataset.ReadJSONL(in)
	if err != nil {
		return fmt.Errorf("replay-pane: the recording: %w", err)
	}
	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	ch, err := engineReplayer{log: replay.Events(evs)}.Start(ctx, req)
	if err != nil {
		enc.Encode(common.ReplayUpdate{Done: &investigate.Experiment{Tweaks: req.Tweaks, Timing: req.Timing, Err: err.Error()}})
		return w.Flush()
	}
	var werr error
	for u := range ch {
		if werr != nil {
			continue // drain, so that the run ends
		}
		werr = enc.Encode(u)
		if werr == nil && len(ch) == 0 {
			werr = w.Flush() // the pane shows what is there now; batch only what queued up
		}
	}
	if werr == nil {
		werr = w.Flush()
	}
	if werr != nil && !errors.Is(werr, io.ErrClosedPipe) {
		return fmt.Errorf("replay-pane: %w", werr)
	}
	return nil
}
