package causal

import (
	"cmp"
	"slices"

	"github.com/kprobe/kprobe/pipeline/event"
)

// A thread's time in a window is cut into marks, each saying what that stretch was spent
// on; where marks overlap the higher priority wins (a runnable stretch inside a write is
// CPU contention, not storage). Whatever no mark covers is the thread's own time on CPU.
// The thresholds below describe how kernels and runtimes behave, not any one service.
const (
	// A block that begins within this much on-CPU time after a file read or write, in no
	// traced syscall, is that I/O's flush (fsync and friends are not traced).
	shadowNs = 300_000
	// Page faults closer together than this (on-CPU time: a preemption between two
	// faults does not part them) form a fault run: the time between them is spent
	// faulting. A minor fault costs a few µs on an idle machine and tens under load.
	faultGapNs = 100_000
	// A block that begins this soon after a page fault, in no syscall, is the fault's.
	faultShadowNs = 30_000
	// Blocks with no traced activity and at most this much time on CPU between them are
	// one wait (a runtime's spurious wake-ups).
	episodeGapNs = 200_000
	// A block ended by data on a socket: the receive must follow the wake-up this soon.
	recvAfterWakeNs = 1_000_000
	// Events this far around a window are read for context (what came before a block).
	contextNs = 5_000_000
)

// Mark priorities: higher wins where marks overlap.
const (
	prioFaultRun = iota + 1
	prioFileIO
	prioBlocked
	prioRunnable
)

// mark is one attributed stretch of a thread's time.
type mark struct {
	a, b int64
	prio int
	c    *causeInfo
	rule string
	conf float64
	join string
	ev   []uint64
}

// causeInfo is what one cause names; marks with the same key add up to one cause.
type causeInfo struct {
	key        string
	kind       string
	proc       *Proc
	resource   string
	resourceID string
	resNode    *Node
	file       *FileKey // storage: the file
	path       []Step   // steps after the subject's span
	detail     string
	via        []*causeInfo // the locks whose holders it delayed, the subject's first (waker chains)
}

// syscallIv is one traced read/write, with what it was on.
type syscallIv struct {
	a, b   int64
	e      *event.Event
	socket *event.Event // the tcp event inside, when the fd is a socket
}

// offIv is one switch-out: blocked in [a, wake), runnable in [wake, b).
type offIv struct {
	a, wake, b int64
	e          *event.Event
}

// threadView is a thread's events in a window, sorted into what the rules ask about.
type threadView struct {
	k        ThreadKey
	offs     []offIv
	syscalls []syscallIv
	tcps     []*event.Event
	faults   []*event.Event
}

func end(e *event.Event) int64 { return e.TsNs + int64(e.DurNs) }

func (x *Index) view(k ThreadKey, from, to, horizon int64) *threadView {
	v := &threadView{k: k}
	lo := max(from-contextNs, horizon)
	evs := x.Thread(k, lo, to+contextNs)
	for i := range evs {
		e := &evs[i]
		// The series reaches back by its longest event; keep only what overlaps the view
		// and began after the horizon, so that what the view holds depends on the window
		// alone, not on how much history the index has seen (the streaming engine's
		// minute, an on-demand read's LookBehind).
		if e.TsNs < horizon || (e.TsNs < lo && end(e) <= lo) {
			continue
		}
		switch e.Type {
		case event.TypeSchedSwitch:
			o := offIv{a: e.TsNs, b: end(e), e: e}
			o.wake = o.b - int64(min(e.RunqDelayNs, e.DurNs))
			if e.Preempted {
				o.wake = o.a
			}
			v.offs = append(v.offs, o)
		case event.TypeRead, event.TypeWrite:
			v.syscalls = append(v.syscalls, syscallIv{a: e.TsNs, b: end(e), e: e})
		case event.TypeTCPSend, event.TypeTCPRecv:
			v.tcps = append(v.tcps, e)
		case event.TypePageFault:
			v.faults = append(v.faults, e)
		}
	}
	// A tcp event inside a read/write makes that fd a socket.
	for i := range v.syscalls {
		s := &v.syscalls[i]
		j, _ := slices.BinarySearchFunc(v.tcps, s.a, func(e *event.Event, t int64) int { return cmp.Compare(e.TsNs, t) })
		if j < len(v.tcps) && v.tcps[j].TsNs <= s.b+1000 {
			s.socket = v.tcps[j]
		}
	}
	return v
}

// syscallAt returns the traced syscall running at t.
func (v *threadView) syscallAt(t int64) *syscallIv {
	i, _ := slices.BinarySearchFunc(v.syscalls, t, func(s syscallIv, t int64) int { return cmp.Compare(s.a, t) })
	// The syscall starting at or before t with the latest start.
	for j := min(i, len(v.syscalls)-1); j >= 0 && j >= i-2; j-- {
		if s := &v.syscalls[j]; s.a <= t && t < s.b {
			return s
		}
	}
	return nil
}

// activity is a traced syscall, tcp event or page fault: something the thread did.
type activity struct {
	a, b int64
	sys  *syscallIv
	tcp  *event.Event
	pf   *event.Event
}

// lastBefore returns the last activity ending at or before t.
func (v *threadView) lastBefore(t int64) (activity, bool) {
	var best activity
	found := false
	take := func(c activity) {
		if c.b <= t && (!found || c.b > best.b) {
			best, found = c, true
		}
	}
	i, _ := slices.BinarySearchFunc(v.syscalls, t, func(s syscallIv, t int64) int { return cmp.Compare(s.a, t) })
	for j := i - 1; j >= 0 && j >= i-3; j-- {
		take(activity{a: v.syscalls[j].a, b: v.syscalls[j].b, sys: &v.syscalls[j]})
	}
	if e := lastEvent(v.tcps, t); e != nil {
		take(activity{a: e.TsNs, b: end(e), tcp: e})
	}
	if e := lastEvent(v.faults, t); e != nil {
		take(activity{a: e.TsNs, b: e.TsNs, pf: e})
	}
	return best, found
}

// lastFileIOBefore is the last traced read or write of a file that ended by t.
func (v *threadView) lastFileIOBefore(t int64) (*syscallIv, bool) {
	i, _ := slices.BinarySearchFunc(v.syscalls, t, func(s syscallIv, t int64) int { return cmp.Compare(s.a, t) })
	var best *syscallIv
	for j := i - 1; j >= 0 && j >= i-3; j-- {
		s := &v.syscalls[j]
		if s.b <= t && s.socket == nil && s.e.Ino != 0 && (best == nil || s.b > best.b) {
			best = s
		}
	}
	return best, best != nil
}

func lastEvent(evs []*event.Event, t int64) *event.Event {
	i, _ := slices.BinarySearchFunc(evs, t+1, func(e *event.Event, t int64) int { return cmp.Compare(e.TsNs, t) })
	for j := i - 1; j >= 0 && j >= i-4; j-- {
		if end(evs[j]) <= t {
			return evs[j]
		}
	}
	return nil
}

// firstAfter returns the first syscall or tcp event starting at or after t.
func (v *threadView) firstAfter(t int64) (activity, bool) {
	var best activity
	found := false
	i, _ := slices.BinarySearchFunc(v.syscalls, t, func(s syscallIv, t int64) int { return cmp.Compare(s.a, t) })
	if i < len(v.syscalls) {
		best, found = activity{a: v.syscalls[i].a, b: v.syscalls[i].b, sys: &v.syscalls[i]}, true
	}
	j, _ := slices.BinarySearchFunc(v.tcps, t, func(e *event.Event, t int64) int { return cmp.Compare(e.TsNs, t) })
	if j < len(v.tcps) && (!found || v.tcps[j].TsNs < best.a) {
		// A tcp event inside the syscall found above belongs to it.
		if !found || v.tcps[j].TsNs >= best.b {
			best, found = activity{a: v.tcps[j].TsNs, b: end(v.tcps[j]), tcp: v.tcps[j]}, true
		}
	}
	return best, found
}

// onCPU is the time in [a, b) the thread was not switched out.
func (v *threadView) onCPU(a, b int64) int64 {
	if b <= a {
		return 0
	}
	d := b - a
	i, _ := slices.BinarySearchFunc(v.offs, a, func(o offIv, t int64) int { return cmp.Compare(o.b, t) })
	for ; i < len(v.offs) && v.offs[i].a < b; i++ {
		d -= min(v.offs[i].b, b) - max(v.offs[i].a, a)
	}
	return max(d, 0)
}

// resolve cuts [from, to) into leaves: the highest-priority mark wins each instant, and
// instants no mark covers go to def.
func resolve(marks []mark, from, to int64, def *mark) []mark {
	type edge struct {
		t     int64
		start bool
		m     int
	}
	edges := make([]edge, 0, 2*len(marks))
	for i, m := range marks {
		a, b := max(m.a, from), min(m.b, to)
		if a < b {
			edges = append(edges, edge{a, true, i}, edge{b, false, i})
		}
	}
	slices.SortFunc(edges, func(x, y edge) int {
		if c := cmp.Compare(x.t, y.t); c != 0 {
			return c
		}
		if x.start != y.start { // ends first, so back-to-back marks do not overlap
			if !x.start {
				return -1
			}
			return 1
		}
		return 0
	})
	var active [prioRunnable + 1][]int // per priority, the marks open now
	var out []mark
	last := -2 // the mark the last leaf came from (-1: def)
	emit := func(a, b int64) {
		if a >= b {
			return
		}
		m, from := *def, -1
		for p := prioRunnable; p > 0; p-- {
			if n := len(active[p]); n > 0 {
				from = active[p][n-1]
				m = marks[from]
				break
			}
		}
		m.a, m.b = a, b
		if n := len(out); n > 0 && out[n-1].b == a && last == from {
			out[n-1].b = b // one mark cut by a lower one's edges stays one leaf
			return
		}
		last = from
		out = append(out, m)
	}
	t := from
	for _, e := range edges {
		emit(t, e.t)
		t = e.t
		p := marks[e.m].prio
		if e.start {
			active[p] = append(active[p], e.m)
		} else {
			active[p] = slices.DeleteFunc(active[p], func(i int) bool { return i == e.m })
		}
	}
	emit(t, to)
	return out
}
