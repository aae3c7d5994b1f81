package tweak

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Tweak is one parsed spec other than timing=.
type Tweak struct {
	Spec     string
	Syscalls []int // numbers, sorted
	FD       int   // -1: any fd
	Nth      Range
	// Delay holds the call before it runs (strace delay_enter); DelayExit holds its
	// result before the program sees it (strace delay_exit).
	Delay, DelayExit time.Duration
	Errno            unix.Errno // non-zero: the call fails with it, unrun
	Retval           int64      // with HasRetval: the call returns it, unrun
	HasRetval        bool
	Timeout          Timeout

	count atomic.Int64 // calls that matched the selector so far
}

// Timeout replaces (Set) or scales (Factor) the timeout a program passes.
type Timeout struct {
	Set    time.Duration
	Factor float64 // > 0 when the spec was xF
}

// IsZero reports that no timeout change was asked for.
func (t Timeout) IsZero() bool { return t.Set == 0 && t.Factor == 0 }

// Apply returns the changed timeout for one the program asked for; infinite (< 0) stays
// infinite when scaled.
func (t Timeout) Apply(d time.Duration) time.Duration {
	switch {
	case t.Factor > 0 && d < 0:
		return d
	case t.Factor > 0:
		return time.Duration(math.Round(float64(d) * t.Factor))
	case t.Set > 0:
		return t.Set
	}
	return d
}

func (t Timeout) String() string {
	if t.Factor > 0 {
		return "x" + strconv.FormatFloat(t.Factor, 'g', -1, 64)
	}
	return t.Set.String()
}

// Range selects calls by their 1-based count among those matching a selector, as
// strace's when=: First..Last every Step calls; Last 0 means no end.
type Range struct {
	First, Last, Step int64
}

// Contains reports whether the n-th matching call is selected.
func (r Range) Contains(n int64) bool {
	if r.First == 0 {
		return true // no nth=: every call
	}
	if n < r.First || (r.Last > 0 && n > r.Last) {
		return false
	}
	return (n-r.First)%r.Step == 0
}

// Mode is how the replay paces the recorded durations.
type Mode uint8

const (
	// Recorded: a served call takes as long as it did in production.
	Recorded Mode = iota
	// Fast: no waiting; sleeps return at once.
	Fast
	// Scaled: the recorded durations and the program's sleeps times Factor.
	Scaled
)

// Timing is the timing= setting.
type Timing struct {
	Mode   Mode
	Factor float64 // Scaled only
}

// Scale returns how long a recorded duration d lasts in the replay.
func (t Timing) Scale(d time.Duration) time.Duration {
	switch t.Mode {
	case Fast:
		return 0
	case Scaled:
		return time.Duration(math.Round(float64(d) * t.Factor))
	}
	return d
}

func (t Timing) String() string {
	switch t.Mode {
	case Fast:
		return "fast"
	case Scaled:
		return "x" + strconv.FormatFloat(t.Factor, 'g', -1, 64)
	}
	return "recorded"
}

// Set is every tweak of one replay.
type Set struct {
	Tweaks []*Tweak
	Timing Timing
}

// Parse parses specs (one per --tweak flag or TUI entry). The first bad spec gives one
// error naming it, the key at fault and what would be accepted.
func Parse(specs []string) (*Set, error) {
	s := &Set{}
	timingSeen := false
	for _, spec := range specs {
		if t, ok, err := parseTiming(spec); ok || err != nil {
			if err != nil {
				return nil, err
			}
			if timingSeen {
				return nil, fmt.Errorf("tweak %q: timing= given twice (give one timing)", spec)
			}
			s.Timing, timingSeen = t, true
			continue
		}
		t, err := ParseOne(spec)
		if err != nil {
			return nil, err
		}
		s.Tweaks = append(s.Tweaks, t)
	}
	return s, nil
}

// Syscalls returns the numbers of every syscall some tweak selects, with whether a
// timeout change (which needs the call's registers) applies to it.
func (s *Set) Syscalls() map[int]bool {
	out := map[int]bool{}
	for _, t := range s.Tweaks {
		for _, nr := range t.Syscalls {
			out[nr] = out[nr] || !t.Timeout.IsZero()
		}
	}
	return out
}

// Match counts the call against every tweak whose selector it meets and returns those
// that fire for it (their nth= includes this call), in the order given. Calls are counted
// across the program's threads (strace counts per thread: the same on a one-thread
// program).
func (s *Set) Match(nr int, fd int64) []*Tweak {
	var out []*Tweak
	for _, t := range s.Tweaks {
		if !t.selects(nr, fd) {
			continue
		}
		if t.Nth.Contains(t.count.Add(1)) {
			out = append(out, t)
		}
	}
	return out
}

func (t *Tweak) selects(nr int, fd int64) bool {
	if _, ok := slices.BinarySearch(t.Syscalls, nr); !ok {
		return false
	}
	return t.FD < 0 || int64(t.FD) == fd
}

// Unmatched lists specs that selected no call during the run: likely a typo in fd= or
// a syscall the program never makes.
func (s *Set) Unmatched() []string {
	var out []string
	for _, t := range s.Tweaks {
		if t.count.Load() == 0 {
			out = append(out, t.Spec)
		}
	}
	return out
}

func parseTiming(spec string) (Timing, bool, error) {
	v, ok := strings.CutPrefix(strings.TrimSpace(spec), "timing=")
	if !ok {
		return Timing{}, false, nil
	}
	switch v {
	case "recorded":
		return Timing{Mode: Recorded}, true, nil
	case "fast":
		return Timing{Mode: Fast}, true, nil
	}
	if strings.Contains(v, ",") {
		return Timing{}, true, fmt.Errorf("tweak %q: timing= stands alone (give it as its own --tweak)", spec)
	}
	f, err := parseFactor(v)
	if err != nil {
		return Timing{}, true, fmt.Errorf("tweak %q: timing=%s: want recorded, fast or a factor such as x2 or x0.5", spec, v)
	}
	if f == 1 {
		return Timing{Mode: Recorded}, true, nil
	}
	return Timing{Mode: Scaled, Factor: f}, true, nil
}

func parseFactor(v string) (float64, error) {
	s, ok := strings.CutPrefix(v, "x")
	if !ok {
		return 0, fmt.Errorf("no x")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f > 0) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("bad factor")
	}
	return f, nil
}
