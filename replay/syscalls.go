package replay

import (
	"sort"

	"github.com/kprobe/kprobe/replay/sysno"
	"github.com/kprobe/kprobe/replay/tweak"
)

// served are the calls the supervisor sees on every replay: what brings the outside
// world in (reads, opens, connects, accepts, readiness, randomness), what goes out to it
// (writes, compared and held back), and what moves fds around (so that fd identity
// holds). Everything else — memory, threads, clocks, signals — never stops.
var served = []string{
	"read", "pread64", "readv", "preadv", "preadv2", "recvfrom", "recvmsg",
	"write", "pwrite64", "writev", "pwritev", "pwritev2", "sendto", "sendmsg",
	"open", "openat", "creat", "close", "close_range", "dup", "dup2", "dup3", "fcntl",
	"connect", "accept", "accept4", "getsockname", "getpeername", "getsockopt", "setsockopt", "shutdown",
	"poll", "ppoll", "select", "pselect6", "getrandom",
}

// registerTimeouts are the calls whose timeout lives in a register or in memory the
// kernel reads during the call: a timeout tweak on them needs a ptrace stop. Sleeps are
// answered by the supervisor instead, and setsockopt's value is rewritten before the
// kernel reads it.
var registerTimeouts = map[string]bool{
	"poll": true, "ppoll": true, "select": true, "pselect6": true,
	"epoll_wait": true, "epoll_pwait": true, "epoll_pwait2": true, "futex": true,
}

// syscalls returns the seccomp verdicts of this run: the numbers that notify the
// supervisor and those that stop in the tracer.
func (e *engine) syscalls() (notify, trace []int) {
	set := map[int]bool{} // nr → traced
	for _, name := range served {
		nr, _ := sysno.Number(name)
		set[nr] = false
	}
	if e.tw.Timing.Mode != tweak.Recorded {
		for _, name := range []string{"nanosleep", "clock_nanosleep"} {
			nr, _ := sysno.Number(name)
			set[nr] = false
		}
	}
	for nr, timeout := range e.tw.Syscalls() {
		set[nr] = set[nr] || (timeout && registerTimeouts[sysno.Name(nr)])
	}
	for nr, traced := range set {
		if traced {
			trace = append(trace, nr)
		} else {
			notify = append(notify, nr)
		}
	}
	sort.Ints(notify)
	sort.Ints(trace)
	return notify, trace
}
