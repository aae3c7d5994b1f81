package tweak

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/replay/sysno"
)

// timeoutSyscalls are the calls whose timeout a tweak can change (setsockopt: the
// SO_RCVTIMEO and SO_SNDTIMEO values it sets).
var timeoutSyscalls = []string{"poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2",
	"nanosleep", "clock_nanosleep", "futex", "setsockopt"}

// keys and their strace spellings.
var aliases = map[string]string{
	"syscall": "syscall", "fd": "fd", "nth": "nth", "when": "nth",
	"delay": "delay", "delay_enter": "delay", "delay_exit": "delay_exit",
	"errno": "errno", "error": "errno", "retval": "retval", "timeout": "timeout",
}

const keyList = "syscall=, fd=, nth= (when=), delay= (delay_enter=), delay_exit=, errno= (error=), retval=, timeout=, or timing= alone"

// ParseOne parses one spec other than timing=.
func ParseOne(spec string) (*Tweak, error) {
	t := &Tweak{Spec: spec, FD: -1}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("tweak %q: %s", spec, fmt.Sprintf(format, a...))
	}
	if strings.TrimSpace(spec) == "" {
		return nil, bad("empty (want key=value pairs: %s)", keyList)
	}
	seen := map[string]bool{}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		k, v, ok := strings.Cut(item, "=")
		if !ok || v == "" {
			return nil, bad("%q is not key=value (keys: %s)", item, keyList)
		}
		key, known := aliases[k]
		if !known {
			if k == "timing" {
				return nil, bad("timing= stands alone (give it as its own --tweak)")
			}
			return nil, bad("unknown key %q (keys: %s)", k, keyList)
		}
		if seen[key] {
			return nil, bad("%s given twice", k)
		}
		seen[key] = true
		var err error
		switch key {
		case "syscall":
			t.Syscalls, err = parseSyscalls(v)
		case "fd":
			var n int64
			n, err = strconv.ParseInt(v, 10, 32)
			if err != nil || n < 0 {
				err = fmt.Errorf("want a file descriptor number ≥ 0")
			}
			t.FD = int(n)
		case "nth":
			t.Nth, err = parseRange(v)
		case "delay":
			t.Delay, err = parseDelay(v)
		case "delay_exit":
			t.DelayExit, err = parseDelay(v)
		case "errno":
			t.Errno, err = parseErrno(v)
		case "retval":
			t.Retval, err = strconv.ParseInt(v, 0, 64)
			if err != nil {
				err = fmt.Errorf("want an integer")
			}
			t.HasRetval = true
		case "timeout":
			t.Timeout, err = parseTimeout(v)
		}
		if err != nil {
			return nil, bad("%s=%s: %v", k, v, err)
		}
	}
	switch {
	case len(t.Syscalls) == 0:
		return nil, bad("no syscall= (say which calls it applies to, e.g. syscall=write)")
	case t.Delay == 0 && t.DelayExit == 0 && t.Errno == 0 && !t.HasRetval && t.Timeout.IsZero():
		return nil, bad("no action (give delay=, delay_exit=, errno=, retval= or timeout=)")
	case t.Errno != 0 && t.HasRetval:
		return nil, bad("errno= and retval= together (a call either fails or returns)")
	case !t.Timeout.IsZero() && (t.Errno != 0 || t.HasRetval):
		return nil, bad("timeout= with errno=/retval= (a failed call never waits)")
	}
	if !t.Timeout.IsZero() {
		for _, nr := range t.Syscalls {
			if name := sysno.Name(nr); !slices.Contains(timeoutSyscalls, name) {
				return nil, bad("timeout= on %s, which takes no timeout (timeouts apply to %s)", name, strings.Join(timeoutSyscalls, ", "))
			}
		}
	}
	return t, nil
}

func parseSyscalls(v string) ([]int, error) {
	var out []int
	for _, name := range strings.Split(v, "|") {
		nr, ok := sysno.Number(name)
		if !ok {
			if s := suggest(name); s != "" {
				return nil, fmt.Errorf("unknown syscall %q (did you mean %s?)", name, s)
			}
			return nil, fmt.Errorf("unknown syscall %q (x86_64 names, such as read, openat, epoll_wait)", name)
		}
		out = append(out, nr)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// parseRange reads N, N..M, N+ or N+S (strace's when=).
func parseRange(v string) (Range, error) {
	want := fmt.Errorf("want N, N..M, N+ or N+STEP with N ≥ 1")
	num := func(s string) (int64, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			return 0, want
		}
		return n, nil
	}
	if a, b, ok := strings.Cut(v, ".."); ok {
		first, err := num(a)
		if err != nil {
			return Range{}, err
		}
		last, err := num(b)
		if err != nil {
			return Range{}, err
		}
		if last < first {
			return Range{}, fmt.Errorf("range ends (%d) before it starts (%d)", last, first)
		}
		return Range{First: first, Last: last, Step: 1}, nil
	}
	if a, b, ok := strings.Cut(v, "+"); ok {
		first, err := num(a)
		if err != nil {
			return Range{}, err
		}
		if b == "" {
			return Range{First: first, Step: 1}, nil
		}
		step, err := num(b)
		if err != nil {
			return Range{}, err
		}
		return Range{First: first, Step: step}, nil
	}
	n, err := num(v)
	if err != nil {
		return Range{}, err
	}
	return Range{First: n, Last: n, Step: 1}, nil
}

// parseDelay reads a Go duration (200ms) or, as strace does, bare microseconds.
func parseDelay(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("negative delay")
		}
		return time.Duration(n) * time.Microsecond, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 200ms (a bare number is microseconds)")
	}
	if d < 0 {
		return 0, fmt.Errorf("negative delay")
	}
	return d, nil
}

func parseTimeout(v string) (Timeout, error) {
	if strings.HasPrefix(v, "x") {
		f, err := parseFactor(v)
		if err != nil {
			return Timeout{}, fmt.Errorf("want a factor such as x0.1 or x2")
		}
		return Timeout{Factor: f}, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return Timeout{}, fmt.Errorf("want a positive duration such as 50ms, or a factor such as x0.1")
	}
	return Timeout{Set: d}, nil
}

// parseErrno reads EIO, eio or 5.
func parseErrno(v string) (unix.Errno, error) {
	if n, err := strconv.Atoi(v); err == nil {
		if n < 1 || n > 4095 {
			return 0, fmt.Errorf("errno %d out of range 1..4095", n)
		}
		return unix.Errno(n), nil
	}
	up := strings.ToUpper(v)
	for n := 1; n < 4096; n++ {
		if unix.ErrnoName(unix.Errno(n)) == up {
			return unix.Errno(n), nil
		}
	}
	return 0, fmt.Errorf("unknown errno name (such as EIO, EAGAIN, ECONNRESET, or a number)")
}

// suggest returns the known syscall closest to name, if it is close.
func suggest(name string) string {
	best, bestD := "", 3
	for _, n := range sysno.Names() {
		if d := distance(name, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// distance is the Levenshtein distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
