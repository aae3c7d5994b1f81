package causal

import (
	"net/netip"
	"slices"
	"sort"

	"github.com/kprobe/kprobe/pipeline/event"
)

// Index holds kernel events for the rules: by thread and by socket, each in time order.
// The streaming engine appends to one and evicts what is older than its horizon; the
// on-demand path builds one from what the event log returns. Not safe for concurrent use.
type Index struct {
	threads map[ThreadKey]*series
	sockets map[Tuple]*series
	files   map[FileKey]*series
	procs   map[ProcKey]*procInfo
	n       int
}

// ThreadKey names one thread on one node.
type ThreadKey struct {
	Node     string
	PID, TID uint32
}

// ProcKey names one process on one node.
type ProcKey struct {
	Node string
	PID  uint32
}

// Proc returns the thread's process.
func (k ThreadKey) Proc() ProcKey { return ProcKey{k.Node, k.PID} }

// FileKey names one file on one node by device and inode.
type FileKey struct {
	Node     string
	Dev, Ino uint64
}

// Tuple is a TCP connection as one end sees it: Local is that end.
type Tuple struct {
	Local, Remote netip.AddrPort
}

// Reverse is the same connection as the other end sees it.
func (t Tuple) Reverse() Tuple { return Tuple{Local: t.Remote, Remote: t.Local} }

func (t Tuple) String() string { return "tcp " + t.Local.String() + " -> " + t.Remote.String() }

// TupleOf is the connection of a tcp event, as its process sees it.
func TupleOf(e *event.Event) Tuple {
	return Tuple{Local: netip.AddrPortFrom(e.SAddr.Unmap(), e.SPort), Remote: netip.AddrPortFrom(e.DAddr.Unmap(), e.DPort)}
}

type procInfo struct {
	threads []uint32
}

// series is one key's events sorted by TsNs; maxDur bounds how far back an event that
// overlaps a time may start.
type series struct {
	evs    []event.Event
	maxDur int64
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{threads: map[ThreadKey]*series{}, sockets: map[Tuple]*series{}, files: map[FileKey]*series{}, procs: map[ProcKey]*procInfo{}}
}

// Len is how many events the index holds (socket copies not counted).
func (x *Index) Len() int { return x.n }

// Add indexes events. Payloads are dropped (the rules never read them); the rest is
// copied, so the caller may reuse its slice.
func (x *Index) Add(evs []event.Event) {
	for i := range evs {
		e := evs[i]
		e.Payload = nil
		k := ThreadKey{e.Node, e.PID, e.TID}
		s := x.threads[k]
		if s == nil {
			s = &series{}
			x.threads[k] = s
			p := x.procs[k.Proc()]
			if p == nil {
				p = &procInfo{}
				x.procs[k.Proc()] = p
			}
			i, _ := slices.BinarySearch(p.threads, e.TID)
			p.threads = slices.Insert(p.threads, i, e.TID) // in tid order, whatever order they came in
		}
		if !s.add(e) {
			continue
		}
		x.n++
		switch e.Type {
		case event.TypeTCPSend, event.TypeTCPRecv:
			t := TupleOf(&e)
			ss := x.sockets[t]
			if ss == nil {
				ss = &series{}
				x.sockets[t] = ss
			}
			ss.add(e)
		case event.TypeRead, event.TypeWrite:
			if e.Ino == 0 {
				break
			}
			f := FileKey{e.Node, e.Dev, e.Ino}
			fs := x.files[f]
			if fs == nil {
				fs = &series{}
				x.files[f] = fs
			}
			fs.add(e)
		}
	}
}

// add appends, keeping time order: events of one thread arrive nearly sorted (a switch
// is reported when the thread runs again, a syscall when it returns), so the insertion
// walks back a few places at most.
// It reports false for an event it already holds (a re-read batch, a retried write).
func (s *series) add(e event.Event) bool {
	i := len(s.evs)
	for i > 0 && s.evs[i-1].TsNs > e.TsNs {
		i--
	}
	for j := i - 1; j >= 0 && s.evs[j].TsNs == e.TsNs; j-- {
		if s.evs[j].ID == e.ID {
			return false
		}
	}
	s.evs = append(s.evs, event.Event{})
	copy(s.evs[i+1:], s.evs[i:])
	s.evs[i] = e
	s.maxDur = max(s.maxDur, int64(e.DurNs))
	return true
}

// window returns the events that may overlap [from, to): those starting before to and
// not more than maxDur before from. Callers check the overlap itself.
func (s *series) window(from, to int64) []event.Event {
	if s == nil {
		return nil
	}
	lo := sort.Search(len(s.evs), func(i int) bool { return s.evs[i].TsNs >= from-s.maxDur })
	hi := sort.Search(len(s.evs), func(i int) bool { return s.evs[i].TsNs >= to })
	if hi < lo {
		return nil
	}
	return s.evs[lo:hi]
}

// Thread returns the thread's events that may overlap [from, to), in time order.
func (x *Index) Thread(k ThreadKey, from, to int64) []event.Event {
	return x.threads[k].window(from, to)
}

// Socket returns the tcp events seen on this connection end in [from, to).
func (x *Index) Socket(t Tuple, from, to int64) []event.Event {
	return x.sockets[t].window(from, to)
}

// File returns the reads and writes of this file (by any process) that may overlap
// [from, to).
func (x *Index) File(f FileKey, from, to int64) []event.Event {
	return x.files[f].window(from, to)
}

// Threads lists the threads of a process that have events, by tid.
func (x *Index) Threads(p ProcKey) []uint32 {
	if pi := x.procs[p]; pi != nil {
		return pi.threads
	}
	return nil
}

// The analysis asks what it knows of a process within its window only (KnownIn, CommIn):
// what the index holds beyond it depends on how much history it keeps, and a chain must
// not (the streaming engine keeps a minute, an on-demand read a few seconds).

// KnownIn reports whether the process has events starting in [from, to]: it was recorded
// then.
func (x *Index) KnownIn(p ProcKey, from, to int64) bool {
	pi := x.procs[p]
	if pi == nil {
		return false
	}
	for _, tid := range pi.threads {
		if x.threads[ThreadKey{p.Node, p.PID, tid}].firstIn(from, to) != nil {
			return true
		}
	}
	return false
}

// CommIn names the process by its events starting in [from, to]: the last name of its
// main thread, else the name its earliest event there carried; "" when it has none.
func (x *Index) CommIn(p ProcKey, from, to int64) string {
	pi := x.procs[p]
	if pi == nil {
		return ""
	}
	if s := x.threads[ThreadKey{p.Node, p.PID, p.PID}]; s != nil {
		if e := s.lastIn(from, to); e != nil && e.Comm != "" {
			return e.Comm
		}
	}
	var first *event.Event
	for _, tid := range pi.threads {
		if e := x.threads[ThreadKey{p.Node, p.PID, tid}].firstIn(from, to); e != nil && e.Comm != "" && (first == nil || e.TsNs < first.TsNs) {
			first = e
		}
	}
	if first == nil {
		return ""
	}
	return first.Comm
}

// firstIn is the series' first event starting in [from, to], or nil.
func (s *series) firstIn(from, to int64) *event.Event {
	if s == nil {
		return nil
	}
	i := sort.Search(len(s.evs), func(i int) bool { return s.evs[i].TsNs >= from })
	if i < len(s.evs) && s.evs[i].TsNs <= to {
		return &s.evs[i]
	}
	return nil
}

// lastIn is the series' last event starting in [from, to], or nil.
func (s *series) lastIn(from, to int64) *event.Event {
	if s == nil {
		return nil
	}
	i := sort.Search(len(s.evs), func(i int) bool { return s.evs[i].TsNs > to }) - 1
	if i >= 0 && s.evs[i].TsNs >= from {
		return &s.evs[i]
	}
	return nil
}

// activeNs: a thread counts as running around a time only if it did something (a
// syscall, a switch in or out) this close to it. A thread still switched out when the
// recording ended has no event for that last switch, so "no switch seen" alone proves
// nothing.
const activeNs = 2_000_000

// OnCPU returns the recorded threads of node that ran at some instant of [from, to]:
// active near it and not switched out all through it.
func (x *Index) OnCPU(node string, from, to int64) []ThreadKey {
	var out []ThreadKey
	for k, s := range x.threads {
		if k.Node == node && running(s, from, to) {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b ThreadKey) int { return int(a.TID) - int(b.TID) })
	return out
}

func running(s *series, from, to int64) bool {
	near := false
	var offs [][2]int64
	for _, e := range s.window(from-activeNs, to+activeNs) {
		a, b := e.TsNs, e.TsNs+int64(e.DurNs)
		if (a >= from-activeNs && a <= to+activeNs) || (b >= from-activeNs && b <= to+activeNs) {
			near = true
		}
		if e.Type == event.TypeSchedSwitch && a < to && b > from {
			offs = append(offs, [2]int64{a, b})
		}
	}
	if !near {
		return false
	}
	// Switched out through all of [from, to]? (offs are in start order.)
	t := from
	for _, o := range offs {
		if o[0] > t {
			return true
		}
		t = max(t, o[1])
	}
	return t < to
}

// Evict drops events that started before t and every key left empty.
func (x *Index) Evict(t int64) {
	for k, s := range x.threads {
		n := s.evict(t)
		x.n -= n
		if len(s.evs) == 0 {
			delete(x.threads, k)
			p := x.procs[k.Proc()]
			p.threads = slices.DeleteFunc(p.threads, func(tid uint32) bool { return tid == k.TID })
			if len(p.threads) == 0 {
				delete(x.procs, k.Proc())
			}
		}
	}
	for k, s := range x.sockets {
		if s.evict(t); len(s.evs) == 0 {
			delete(x.sockets, k)
		}
	}
	for k, s := range x.files {
		if s.evict(t); len(s.evs) == 0 {
			delete(x.files, k)
		}
	}
}

func (s *series) evict(t int64) int {
	i := sort.Search(len(s.evs), func(i int) bool { return s.evs[i].TsNs >= t })
	if i == 0 {
		return 0
	}
	n := copy(s.evs, s.evs[i:])
	clear(s.evs[n:])
	s.evs = s.evs[:n]
	return i
}
