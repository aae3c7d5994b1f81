// Package replaytest is a common.Replayer that plays a scripted run from the recorded
// syscalls the Service returns, for tests of the replay screen. The real engine is
// tested in replay/ against ptrace.
package replaytest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui/common"
)

// Replayer replays from svc's syscall log.
type Replayer struct {
	Service investigate.Service
	// Gate, when set, releases one update per receive, so a test can watch a run live.
	Gate chan struct{}
}

// Start implements common.Replayer. A "syscall=write,delay=D" tweak adds D to every
// write and marks it tweaked; "syscall=write,errno=E" fails the first write, after which
// the program retries a write the recording lacks (divergent) and exits 1.
func (r *Replayer) Start(ctx context.Context, req common.ReplayRequest) (<-chan common.ReplayUpdate, error) {
	if req.Process.PID == 0 {
		return nil, fmt.Errorf("replay: no process given")
	}
	log, err := r.Service.SyscallLog(ctx, investigate.SyscallLogQuery{Node: req.Process.Node, PID: req.Process.PID})
	if err != nil {
		return nil, fmt.Errorf("replay: reading the syscall log: %w", err)
	}
	var delay time.Duration
	errno := ""
	for _, t := range req.Tweaks {
		switch {
		case strings.HasPrefix(t, "syscall=write,delay="):
			delay, _ = time.ParseDuration(strings.TrimPrefix(t, "syscall=write,delay="))
		case strings.HasPrefix(t, "syscall=write,errno="):
			errno = strings.TrimPrefix(t, "syscall=write,errno=")
		}
	}
	if len(req.Program) == 0 {
		return nil, fmt.Errorf("replay: no program to run")
	}
	ch := make(chan common.ReplayUpdate)
	go func() {
		defer close(ch)
		send := func(u common.ReplayUpdate) bool {
			if r.Gate != nil {
				select {
				case <-r.Gate:
				case <-ctx.Done():
					return false
				}
			}
			select {
			case ch <- u:
				return true
			case <-ctx.Done():
				return false
			}
		}
		x := investigate.Experiment{Tweaks: req.Tweaks, Timing: req.Timing}
		if !send(common.ReplayUpdate{Output: fmt.Sprintf("%s: replaying %d recorded syscalls\n", req.Process.Comm, len(log))}) {
			return
		}
		var total int64
		for i, e := range log {
			mark, d := common.MarkServed, int64(e.DurNs)
			if e.Type == event.TypeWrite && (delay != 0 || errno != "") {
				mark = common.MarkTweaked
				d = max(d+int64(delay), 0)
			}
			text := fmt.Sprintf("%s(%d, %d) = %d  %s", e.Syscall, e.FD, e.Bytes, e.Bytes, investigate.HumanDuration(d))
			if mark == common.MarkTweaked && errno != "" {
				text = fmt.Sprintf("%s(%d, %d) = -%s", e.Syscall, e.FD, e.Bytes, errno)
			}
			total += d
			x.Served++
			if mark == common.MarkTweaked {
				x.Tweaked++
			}
			if !send(common.ReplayUpdate{Syscall: &common.TraceLine{Seq: i + 1, Mark: mark, Text: text}}) {
				return
			}
			if mark == common.MarkTweaked && errno != "" {
				x.Divergent, x.ExitCode = 1, 1
				x.FirstDivergence = fmt.Sprintf("%s(%d) retried after %s: not in the recording", e.Syscall, e.FD, errno)
				send(common.ReplayUpdate{Syscall: &common.TraceLine{Seq: i + 2, Mark: common.MarkDivergent, Text: fmt.Sprintf("%s(%d, %d) retry", e.Syscall, e.FD, e.Bytes)}})
				send(common.ReplayUpdate{Output: fmt.Sprintf("ledger write failed: %s\n", errno)})
				break
			}
		}
		if x.ExitCode == 0 {
			send(common.ReplayUpdate{Output: "settlement posted\n"})
		}
		x.Native = 2
		x.DurationNs = total
		send(common.ReplayUpdate{Done: &x})
	}()
	return ch, nil
}
