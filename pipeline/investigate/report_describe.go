package investigate

import (
	"fmt"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
)

// Describe says in a few words what one kernel event was, the way a report table, the
// workstation's event detail and the CLI print it.
func Describe(e *event.Event) string {
	switch e.Type {
	case event.TypeRead, event.TypeWrite:
		name := e.Syscall
		if name == "" {
			name = e.Type.String()
		}
		if e.Errno != 0 {
			return fmt.Sprintf("%s(fd %d) failed errno %d", name, e.FD, e.Errno)
		}
		return fmt.Sprintf("%s(fd %d) %d bytes, inode %d", name, e.FD, e.Bytes, e.Ino)
	case event.TypeTCPSend, event.TypeTCPRecv:
		return fmt.Sprintf("%d bytes %s:%d -> %s:%d", e.Bytes, e.SAddr, e.SPort, e.DAddr, e.DPort)
	case event.TypeSchedSwitch:
		if e.Preempted {
			return fmt.Sprintf("preempted by %s (pid %d), run-queue delay %v", e.NextComm, e.NextPID, time.Duration(e.RunqDelayNs))
		}
		waker := fmt.Sprintf("pid %d", e.WakerPID)
		if e.WakerPID == 0 {
			waker = "the kernel (interrupt or timer)"
		}
		return fmt.Sprintf("blocked off-CPU, woken by %s, run-queue delay %v", waker, time.Duration(e.RunqDelayNs))
	case event.TypePageFault:
		kind := "user"
		if e.KernelFault {
			kind = "kernel"
		}
		return fmt.Sprintf("%s fault at %#x", kind, e.Addr)
	}
	return ""
}
