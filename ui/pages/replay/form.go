package replay

import (
	"fmt"
	"strings"
	"time"

	"charm.land/huh/v2"
)

// tweaks is what the form asks for; each field empty means "as recorded".
type tweaks struct {
	Delay   string // "write 50ms": add latency to a syscall
	Errno   string // "write EIO": make a syscall fail
	Timeout string // "2s": the program's timeout
	Timing  string // recorded, fast, scaled:2, scaled:0.5
}

// list turns the answers into the replay engine's tweak grammar.
func (t tweaks) list() []string {
	var out []string
	if t.Delay = strings.TrimSpace(t.Delay); t.Delay != "" {
		out = append(out, "delay "+t.Delay)
	}
	if t.Errno = strings.TrimSpace(t.Errno); t.Errno != "" {
		out = append(out, "errno "+t.Errno)
	}
	if t.Timeout = strings.TrimSpace(t.Timeout); t.Timeout != "" {
		out = append(out, "timeout "+t.Timeout)
	}
	return out
}

var errnos = map[string]bool{
	"EIO": true, "ENOSPC": true, "EAGAIN": true, "EINTR": true, "ETIMEDOUT": true,
	"ECONNRESET": true, "ECONNREFUSED": true, "EPIPE": true, "ENOMEM": true, "EBADF": true,
}

var syscalls = map[string]bool{
	"read": true, "write": true, "pread64": true, "pwrite64": true, "readv": true, "writev": true,
	"fsync": true, "fdatasync": true, "sendto": true, "recvfrom": true, "connect": true, "accept": true,
	"tcp_send": true, "tcp_recv": true,
}

func validateDelay(s string) error {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil
	}
	if len(f) != 2 || !syscalls[f[0]] {
		return fmt.Errorf("want SYSCALL DURATION, e.g. write 50ms")
	}
	if _, err := time.ParseDuration(f[1]); err != nil {
		return fmt.Errorf("%q is not a duration (50ms, -600ms, 1.5s)", f[1])
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
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	if d, err := time.ParseDuration(s); err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration, e.g. 2s")
	}
	return nil
}

// newForm asks for one run's tweaks, starting from the last run's answers.
func newForm(t *tweaks, width int) *huh.Form {
	if t.Timing == "" {
		t.Timing = "recorded"
	}
	f := huh.NewForm(huh.NewGroup(
		huh.NewInput().Key("delay").Title("Delay a syscall").
			Description("SYSCALL DURATION: write 50ms adds latency; -600ms takes it away").
			Placeholder("write 50ms").Value(&t.Delay).Validate(validateDelay),
		huh.NewInput().Key("errno").Title("Inject an error").
			Description("SYSCALL ERRNO: the first such call fails").
			Placeholder("write EIO").Value(&t.Errno).Validate(validateErrno),
		huh.NewInput().Key("timeout").Title("Change the timeout").
			Description("the program's timeout, as a duration").
			Placeholder("2s").Value(&t.Timeout).Validate(validateTimeout),
		huh.NewSelect[string]().Key("timing").Title("Timing").
			Options(
				huh.NewOption("as recorded", "recorded"),
				huh.NewOption("fast (no waiting)", "fast"),
				huh.NewOption("twice as slow", "scaled:2"),
				huh.NewOption("twice as fast", "scaled:0.5"),
			).Value(&t.Timing),
	)).WithShowHelp(false).WithTheme(huh.ThemeFunc(huh.ThemeBase16)).WithWidth(min(width, 72))
	return f
}
