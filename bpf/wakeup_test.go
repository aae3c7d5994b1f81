package bpf

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/bpf/bpftest"
)

// TestTimerWakeupIsKernel: a thread woken by a timer was woken by the
// kernel, not by the task the timer interrupt happened to land on. The
// workload sleeps pinned to one CPU next to a process spinning there, so
// the interrupts land on the spinner; then it blocks in a read that this
// test ends, a wakeup by a task, which must be credited to this process.
//
// Most sleeps end in a blocked switch woken by the timer, but not all: a
// thread preempted between arming its timer and blocking may find it
// expired and never block. So: at least one kernel wakeup, at most one per
// sleep, and no blocked switch credited to any task but this process.
func TestTimerWakeupIsKernel(t *testing.T) {
	needKernel(t)
	const sleeps = 5
	const ms = 10
	w := bpftest.Start(t, "timer", strconv.Itoa(sleeps), strconv.Itoa(ms))
	r := openProbes(t, Options{PIDs: []uint32{w.Info.PID}})
	s := startSession(r)
	if _, err := w.Stdin.Write([]byte{'g'}); err != nil {
		t.Fatal(err)
	}
	// After the sleeps, the workload reads 2 bytes: write once it is asleep
	// there (off the run queue: it has a wait channel).
	task := fmt.Sprintf("/proc/%d/task/%d/", w.Info.PID, w.Info.TID)
	waitInSyscall(t, task+"syscall", func(f []string) bool {
		if f[0] != strconv.Itoa(unix.SYS_READ) || f[3] != "0x2" {
			return false
		}
		wchan, err := os.ReadFile(task + "wchan")
		return err == nil && len(wchan) > 0 && string(wchan) != "0"
	}, "the workload's last read")
	if _, err := w.Stdin.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if err := w.Cmd.Wait(); err != nil {
		t.Fatalf("workload: %v", err)
	}
	evs := s.stop(t)

	self := uint32(os.Getpid())
	var kernel, byTest int
	for _, e := range evs {
		if e.Type != EventSchedSwitch || e.TID != w.Info.TID || e.Preempted {
			continue
		}
		switch {
		case e.KernelWakeup:
			kernel++
			if e.WakerPID != 0 || e.WakerTID != 0 {
				t.Errorf("kernel wakeup with waker %d/%d: %+v", e.WakerPID, e.WakerTID, e)
			}
		case e.WakerPID == self:
			byTest++
		default:
			t.Errorf("blocked switch woken by pid %d tid %d (spinner %d, test %d): %+v",
				e.WakerPID, e.WakerTID, w.Info.Spinner, self, e)
		}
	}
	if kernel < 1 || kernel > sleeps || byTest != 1 {
		t.Errorf("wakeups: %d by the kernel, %d by this process; want 1 to %d and 1", kernel, byTest, sleeps)
	}
}
