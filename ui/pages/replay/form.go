package replay

import (
	"fmt"
	"strings"
	"time"

	"charm.land/huh/v2"
)

// tweaks is what the form asks for; each tweak field empty means "as recorded".
type tweaks struct {
	Program string // the command run in place of the recorded process
	Delay   string // "write 50ms": add latency to a syscall
	Errno   string // "write EIO": make a syscall fail
	Timeout string // "poll 50ms": change the timeout a syscall waits with
	Timing  string // recorded, fast, x2, x0.5
}

// list turns the answers into the replay engine's tweak grammar (replay/tweak):
// syscall=write,delay=50ms · syscall=write,errno=EIO · syscall=poll,timeout=50ms ·
// timing=x2.
func (t tweaks) list() []string {
	var out []string
	if f := strings.Fields(t.Delay); len(f) == 2 {
		out = append(out, "syscall="+f[0]+",delay="+f[1])
	}
	if f := strings.Fields(t.Errno); len(f) == 2 {
		out = append(out, "syscall="+f[0]+",errno="+f[1])
	}
	if f := strings.Fields(t.Timeout); len(f) == 2 {
		out = append(out, "syscall="+f[0]+",timeout="+f[1])
	}
	if t.Timing != "" && t.Timing != "recorded" {
		out = append(out, "timing="+t.Timing)
	}
	return out
}

var errnos = map[string]bool{
	"EIO": true, "ENOSPC": true, "EAGAIN": true, "EINTR": true, "ETIMEDOUT": true,
	"ECONNRESET": true, "ECONNREFUSED": true, "EPIPE": true, "ENOMEM": true, "EBADF": true,
}

var syscalls = map[string]bool{
	"read": true, "write": true, "pread64": true, "pwrite64": true, "readv": true, "writev": true,
	"fsync": true, "fdatasync": true, "sendto": true, "recvfrom": true, "sendmsg": true, "recvmsg": true,
	"connect": true, "accept": true, "accept4": true,
}

var timeoutSyscalls = map[string]bool{
	"poll": true, "ppoll": true, "select": true, "pselect6": true, "epoll_wait": true, "epoll_pwait": true,
	"epoll_pwait2": true, "nanosleep": true, "clock_nanosleep": true, "futex": true, "setsockopt": true,
}

func validateDelay(s string) error {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil
	}
	if len(f) != 2 || !syscalls[f[0]] {
		return fmt.Errorf("want SYSCALL DURATION, e.g. write 50ms")
	}
	if d, err := time.ParseDuration(f[1]); err != nil || d < 0 {
		return fmt.Errorf("%q is not a duration ≥ 0 (50ms, 1.5s)", f[1])
	}
	return nil
}

func validateProgram(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("say which program to run in place of the recorded process")
	}
	return nil
}

func validateErrno(s string) error {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil
	}
	if len(f) != 2 || !syscalls[f[0]] || !errnos[f[1]] {
		return fmt.Errorf("want SYSCALL ERRNO, e.g. write EIO (EIO ENOSPC EAGAIN EINTR ETIMEDOUT ECONNRESET ...)")
	}
	return nil
}

func validateTimeout(s string) error {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil
	}
	if len(f) != 2 || !timeoutSyscalls[f[0]] {
		return fmt.Errorf("want SYSCALL TIMEOUT, e.g. poll 50ms (poll, epoll_wait, select, futex, nanosleep ...)")
	}
	if d, err := time.ParseDuration(f[1]); err != nil || d < 0 {
		return fmt.Errorf("%q is not a duration ≥ 0", f[1])
	}
	return nil
}

// newForm asks for one run's tweaks, starting from the last run's answers.
func newForm(t *tweaks, width int) *huh.Form {
	if t.Timing == "" {
		t.Timing = "recorded"
	}
	f := huh.NewForm(huh.NewGroup(
		huh.NewInput().Key("program").Title("Program (run in place of the recorded process)").
			Value(&t.Program).Validate(validateProgram),
		huh.NewInput().Key("delay").Title("Delay a syscall: SYSCALL DURATION").
			Placeholder("write 50ms").Value(&t.Delay).Validate(validateDelay),
		huh.NewInput().Key("errno").Title("Inject an error: SYSCALL ERRNO").
			Placeholder("write EIO").Value(&t.Errno).Validate(validateErrno),
		huh.NewInput().Key("timeout").Title("Change a timeout: SYSCALL TIMEOUT").
			Placeholder("poll 2s").Value(&t.Timeout).Validate(validateTimeout),
		huh.NewSelect[string]().Key("timing").Title("Timing").
			Options(
				huh.NewOption("as recorded", "recorded"),
				huh.NewOption("fast (no waiting)", "fast"),
				huh.NewOption("twice as slow", "x2"),
				huh.NewOption("twice as fast", "x0.5"),
			).Value(&t.Timing),
	)).WithShowHelp(false).WithTheme(huh.ThemeFunc(huh.ThemeBase16)).WithWidth(min(width, 72))
	return f
}
