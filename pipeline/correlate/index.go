package correlate

import (
	"container/heap"
	"slices"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// Join kinds written to event.Event.Join (see event.Join* for what each means).
const (
	JoinTID        = event.JoinTID
	JoinThreadName = event.JoinThreadName
	JoinOnCPU      = event.JoinOnCPU
	JoinPID        = event.JoinPID
	JoinPeerPID    = event.JoinPeerPID
)

// miss says why an event joined no span.
type miss uint8

const (
	missNone       miss = iota
	missHost            // no span from the event's node
	missPID             // no span of the event's process
	missThread          // spans of the process covered the time, on other threads
	missSpanInTime      // no span of the process covered the time
)

type spanKey struct{ trace, span string }

// entry is one retained span.
type entry struct {
	s         span.Span // s.Attrs holds the span's own business attributes
	key       spanKey
	parentKey spanKey
	merged    map[string]string // s.Attrs over the ancestors' merged attributes; shared, read-only
	children  []*entry
	// lists holds the entry's lists: its process's (pid, 0), and (pid, thread.id) when it
	// names a thread.
	lists   [2]*spanList
	visit   uint64 // propagation pass that last reached the entry (guards against ID cycles)
	orphan  bool   // waiting in index.orphans for its parent
	evicted bool

	comm       string // thread.name as the kernel would keep it
	joined     bool   // some event joined it
	byProcess  bool   // some event joined it on the process alone although it names a thread
	cpuChecked bool   // cpuFilter is final
	cpuFilter  bool   // some thread of its process is not known off-CPU at its start and end
}

// spanList holds the spans of one (host, pid, tid); tid 0 holds the spans that name no
// thread. Lookups binary-search the start times and walk back to the innermost span
// containing the time; maxEnd stops the walk once no earlier span can reach it.
type spanList struct {
	host   *hostIndex
	id     uint64   // pid<<32 | tid
	spans  []*entry // by StartNs ascending, then EndNs descending (inner spans later)
	starts []int64  // spans[i].s.StartNs: searched without touching the entries
	maxEnd []int64  // maxEnd[i] = max EndNs over spans[:i+1], valid below clean
	clean  int
	dead   int // evicted entries not yet compacted away
}

type hostIndex struct {
	name  string
	lists map[uint64]*spanList

	// The previous lookup's lists (nil when absent): a thread's events come in runs.
	// Reset whenever a list of the host is created or deleted.
	cacheOK      bool
	cachePID     uint32
	cacheTID     uint32
	cacheTIDList *spanList
	cachePIDList *spanList
}

// lookupLists returns the lists of (pid, tid) and of (pid, 0), either possibly nil.
func (h *hostIndex) lookupLists(pid, tid uint32) (*spanList, *spanList) {
	if !h.cacheOK || h.cachePID != pid || h.cacheTID != tid {
		var tl *spanList
		if tid != 0 {
			tl = h.lists[listID(pid, tid)]
		}
		h.cacheOK, h.cachePID, h.cacheTID = true, pid, tid
		h.cacheTIDList, h.cachePIDList = tl, h.lists[listID(pid, 0)]
	}
	return h.cacheTIDList, h.cachePIDList
}

// index holds the retained spans.
type index struct {
	business span.Business
	hosts    map[string]*hostIndex
	byID     map[spanKey]*entry
	orphans  map[spanKey][]*entry // spans whose parent has not arrived, by parent
	byEnd    endHeap
	visit    uint64
	dirty    []*spanList // the lists holding evicted entries (dead > 0)
	spare    []*spanList

	lastHost *hostIndex // the previous lookup's host: events come in runs of one host

	// procs holds the thread tables, fed by every event (spans or not).
	procs     map[procKey]*procThreads
	lastKey   procKey // the previous event's process and thread: events come in runs
	lastProc  *procThreads
	lastTID   uint32
	lastTh    *thread
	lastPrune int64
}

type procKey struct {
	node string
	pid  uint32
}

// see feeds the thread table with one event.
func (x *index) see(ev *event.Event) {
	if x.lastProc == nil || x.lastKey.pid != ev.PID || x.lastKey.node != ev.Node {
		k := procKey{ev.Node, ev.PID}
		p := x.procs[k]
		if p == nil {
			p = newProcThreads()
			x.procs[k] = p
		}
		x.lastKey, x.lastProc, x.lastTh = k, p, nil
	}
	if x.lastTh != nil && x.lastTID == ev.TID {
		x.lastTh.observe(x.lastProc, ev)
		return
	}
	x.lastProc.see(ev)
	x.lastTID, x.lastTh = ev.TID, x.lastProc.threads[ev.TID]
}

// pruneThreads forgets old off-CPU intervals and idle threads, at most once per second
// of event time.
func (x *index) pruneThreads(wm int64) {
	if wm < x.lastPrune+1e9 {
		return
	}
	x.lastPrune = wm
	for k, p := range x.procs {
		p.prune(wm-offCPUKeep, wm-threadIdle)
		if len(p.threads) == 0 {
			delete(x.procs, k)
		}
	}
	x.lastProc, x.lastTh = nil, nil
}

func newIndex(business span.Business) *index {
	return &index{
		business: business,
		hosts:    make(map[string]*hostIndex),
		byID:     make(map[spanKey]*entry),
		orphans:  make(map[spanKey][]*entry),
		procs:    make(map[procKey]*procThreads),
	}
}

func listID(pid, tid uint32) uint64 { return uint64(pid)<<32 | uint64(tid) }

// add retains a span; it reports false for a duplicate.
func (x *index) add(s span.Span) bool {
	key := spanKey{s.TraceID, s.SpanID}
	if _, dup := x.byID[key]; dup {
		return false
	}
	s.Attrs = x.business.Filter(s.Attrs)
	e := &entry{s: s, key: key}
	x.byID[key] = e

	var parent *entry
	if s.ParentID != "" {
		e.parentKey = spanKey{s.TraceID, s.ParentID}
		parent = x.byID[e.parentKey]
	}
	if parent != nil {
		parent.children = append(parent.children, e)
	} else if s.ParentID != "" {
		e.orphan = true
		x.orphans[e.parentKey] = append(x.orphans[e.parentKey], e)
	}
	e.merged = mergeAttrs(e, parent)
	// Descendants that came first now inherit from this span and its ancestors.
	if waiting, ok := x.orphans[key]; ok {
		delete(x.orphans, key)
		x.visit++
		e.visit = x.visit
		for _, c := range waiting {
			if c.evicted {
				continue
			}
			c.orphan = false
			e.children = append(e.children, c)
			x.propagate(c, e)
		}
	}

	x.insert(e)
	heap.Push(&x.byEnd, e)
	return true
}

// mergeAttrs returns e's own attributes over its parent's merged ones, sharing a map
// whenever one side is empty.
func mergeAttrs(e, parent *entry) map[string]string {
	var pm map[string]string
	if parent != nil {
		pm = parent.merged
	}
	switch {
	case len(pm) == 0:
		return e.s.Attrs
	case len(e.s.Attrs) == 0:
		return pm
	}
	m := make(map[string]string, len(pm)+len(e.s.Attrs))
	for k, v := range pm {
		m[k] = v
	}
	for k, v := range e.s.Attrs {
		m[k] = v
	}
	return m
}

func (x *index) propagate(e, parent *entry) {
	if e.visit == x.visit {
		return // span IDs that form a cycle
	}
	e.visit = x.visit
	e.merged = mergeAttrs(e, parent)
	for _, c := range e.children {
		if !c.evicted {
			x.propagate(c, e)
		}
	}
}

// hostFor returns the host's index, creating it.
func (x *index) hostFor(name string) *hostIndex {
	h := x.hosts[name]
	if h == nil {
		h = &hostIndex{name: name, lists: make(map[uint64]*spanList)}
		x.hosts[name] = h
	}
	return h
}

func (x *index) insert(e *entry) {
	e.comm = kernelComm(e.s.ThreadName)
	h := x.hostFor(e.s.Host)
	e.lists[0] = h.insertInto(listID(e.s.PID, 0), e)
	if e.s.TID != 0 {
		e.lists[1] = h.insertInto(listID(e.s.PID, e.s.TID), e)
	}
}

func (h *hostIndex) insertInto(id uint64, e *entry) *spanList {
	l := h.lists[id]
	if l == nil {
		l = &spanList{host: h, id: id}
		h.lists[id] = l
		h.cacheOK, h.cacheTIDList, h.cachePIDList = false, nil, nil
	}
	// Before any equal (start, end): the walk back meets the earlier arrival first, and
	// with identical ranges the child, which ends and is exported first, is the inner one.
	lo, hi := 0, len(l.spans)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		o := l.spans[m]
		if o.s.StartNs < e.s.StartNs || (o.s.StartNs == e.s.StartNs && o.s.EndNs > e.s.EndNs) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	l.spans = slices.Insert(l.spans, lo, e)
	l.starts = slices.Insert(l.starts, lo, e.s.StartNs)
	l.maxEnd = append(l.maxEnd, 0)
	l.clean = min(l.clean, lo)
	return l
}

func (l *spanList) fix() {
	for i := l.clean; i < len(l.spans); i++ {
		end := l.spans[i].s.EndNs
		if i > 0 {
			end = max(end, l.maxEnd[i-1])
		}
		l.maxEnd[i] = end
	}
	l.clean = len(l.spans)
}

// grade is how well a span fits an event's thread: a span that fits by evidence (its
// thread, its name, on-CPU) is preferred to one that merely does not contradict it.
type grade uint8

const (
	gradeNo grade = iota
	gradeWeak
	gradeStrong
)

// innermost returns the latest-starting live span of l that contains t and that ok
// grades strong, else the latest-starting graded weak (nil ok grades every span
// strong); covered reports whether any live span contains t.
func (l *spanList) innermost(t int64, ok func(*entry) grade) (e *entry, covered bool) {
	if l.clean < len(l.spans) {
		l.fix()
	}
	spans, starts := l.spans, l.starts
	lo, hi := 0, len(starts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if starts[m] <= t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	var weak *entry
	for i := lo - 1; i >= 0 && l.maxEnd[i] >= t; i-- {
		if e := spans[i]; e.s.EndNs >= t && !e.evicted {
			covered = true
			g := gradeStrong
			if ok != nil {
				g = ok(e)
			}
			switch {
			case g == gradeStrong:
				return e, true
			case g == gradeWeak && weak == nil:
				weak = e
			}
		}
	}
	return weak, covered
}

// innermostLinear is innermost by a scan of every span of the list: the baseline the
// benchmark compares against, and an oracle for tests. On a tie of start and end the
// last in the list wins, as in innermost.
func (l *spanList) innermostLinear(t int64, ok func(*entry) grade) (*entry, bool) {
	var best [gradeStrong + 1]*entry
	covered := false
	for _, e := range l.spans {
		if e.evicted || e.s.StartNs > t || e.s.EndNs < t {
			continue
		}
		covered = true
		g := gradeStrong
		if ok != nil {
			g = ok(e)
		}
		if g == gradeNo {
			continue
		}
		if b := best[g]; b == nil || e.s.StartNs > b.s.StartNs ||
			(e.s.StartNs == b.s.StartNs && e.s.EndNs <= b.s.EndNs) {
			best[g] = e
		}
	}
	if best[gradeStrong] != nil {
		return best[gradeStrong], covered
	}
	return best[gradeWeak], covered
}

// lookup finds the span an event belongs to and how it was joined, or why none.
func (x *index) lookup(ev *event.Event, evMax int64, linear bool) (*entry, string, miss) {
	h := x.lastHost
	if h == nil || h.name != ev.Node {
		if h = x.hosts[ev.Node]; h == nil {
			return nil, "", missHost
		}
		x.lastHost = h
	}
	find := (*spanList).innermost
	if linear {
		find = (*spanList).innermostLinear
	}
	tl, pl := h.lookupLists(ev.PID, ev.TID)
	if tl != nil {
		if e, _ := find(tl, ev.TsNs, nil); e != nil {
			return e, JoinTID, missNone
		}
	}
	if pl == nil {
		return nil, "", missPID
	}
	j := threadJudge{ev: ev, proc: x.procs[procKey{ev.Node, ev.PID}], evMax: evMax}
	e, covered := find(pl, ev.TsNs, j.grade)
	if e == nil {
		if covered {
			return nil, "", missThread
		}
		return nil, "", missSpanInTime
	}
	j.grade(e) // again for the chosen span: the walk may have judged others since
	return e, j.how, missNone
}

// threadJudge decides whether a span of the event's process, found by time alone,
// belongs to the event's thread, and says how that was decided.
type threadJudge struct {
	ev    *event.Event
	proc  *procThreads
	evMax int64
	how   string
}

func (j *threadJudge) grade(e *entry) grade {
	p, ev := j.proc, j.ev
	if p == nil {
		j.how = processJoin(e)
		return gradeWeak
	}
	if e.s.TID != 0 && e.s.TID != ev.TID && p.threads[e.s.TID] != nil {
		return gradeNo // it names another of the process's threads
	}
	if e.s.TID == ev.TID && e.s.TID != 0 {
		j.how = JoinTID
		return gradeStrong
	}
	narrowed := false
	if e.comm != "" {
		switch n := p.byComm[e.comm]; {
		case n == 1 && ev.Comm == e.comm:
			j.how = JoinThreadName
			return gradeStrong
		case n >= 1 && ev.Comm != e.comm:
			return gradeNo // it names a thread by a name this one does not bear
		case n > 1:
			narrowed = true // one of several threads of that name: which one, on-CPU says
		}
	}
	th := p.threads[ev.TID]
	if th != nil && j.cpuFilter(e) {
		s, end := th.at(e.s.StartNs), th.at(e.s.EndNs)
		if s == cpuOff || end == cpuOff {
			return gradeNo
		}
		if s == cpuOn || end == cpuOn {
			j.how = JoinOnCPU
			return gradeStrong
		}
	}
	if narrowed {
		j.how = JoinThreadName
		return gradeWeak
	}
	j.how = processJoin(e)
	return gradeWeak
}

// cpuFilter reports whether on-CPU evidence may exclude threads from e: only when at
// least one thread of the process could have been on a CPU at both its start and end
// (else the evidence is inconsistent, e.g. the span's thread was never recorded, and
// excluding every thread would lose the span's own events). Final once events past the
// span's end have been seen.
func (j *threadJudge) cpuFilter(e *entry) bool {
	if e.cpuChecked {
		return e.cpuFilter
	}
	ok := false
	for _, th := range j.proc.threads {
		if th.at(e.s.StartNs) != cpuOff && th.at(e.s.EndNs) != cpuOff {
			ok = true
			break
		}
	}
	if j.evMax > e.s.EndNs {
		e.cpuChecked, e.cpuFilter = true, ok
	}
	return ok
}

func processJoin(e *entry) string {
	if e.s.PIDFrom == span.FromPeer {
		return JoinPeerPID
	}
	return JoinPID
}

// evict drops spans that end before until, then the earliest-ending ones while more
// than maxSpans remain; it returns how many went for each reason.
func (x *index) evict(until int64, maxSpans int) (expired, forced int) {
	for len(x.byEnd) > 0 && x.byEnd[0].s.EndNs < until {
		x.remove(heap.Pop(&x.byEnd).(*entry))
		expired++
	}
	for len(x.byEnd) > maxSpans {
		x.remove(heap.Pop(&x.byEnd).(*entry))
		forced++
	}
	dirty := x.dirty
	x.dirty, x.spare = x.spare[:0], dirty
	for _, l := range dirty {
		l.compact(x) // lists still holding evicted entries go back on x.dirty
	}
	clear(dirty)
	return expired, forced
}

func (x *index) remove(e *entry) {
	e.evicted = true
	delete(x.byID, e.key)
	if e.orphan {
		w := x.orphans[e.parentKey]
		for i, c := range w {
			if c == e {
				w = append(w[:i], w[i+1:]...)
				break
			}
		}
		if len(w) == 0 {
			delete(x.orphans, e.parentKey)
		} else {
			x.orphans[e.parentKey] = w
		}
	}
	e.children = nil
	for _, l := range e.lists {
		if l == nil {
			continue
		}
		if l.dead == 0 {
			x.dirty = append(x.dirty, l)
		}
		l.dead++
	}
}

// compact removes evicted entries from l once they are a quarter of it, so a round that
// evicts one span does not copy the whole list; lookups skip the rest.
func (l *spanList) compact(x *index) {
	if l.dead*4 < len(l.spans) {
		if l.dead > 0 {
			x.dirty = append(x.dirty, l) // keep it listed: checked again next round
		}
		return
	}
	n := 0
	for i, e := range l.spans {
		if e.evicted {
			l.clean = min(l.clean, i)
			continue
		}
		l.spans[n] = e
		l.starts[n] = e.s.StartNs
		n++
	}
	clear(l.spans[n:])
	l.spans = l.spans[:n]
	l.starts = l.starts[:n]
	l.maxEnd = l.maxEnd[:n]
	l.clean = min(l.clean, n)
	l.dead = 0
	if n == 0 {
		delete(l.host.lists, l.id)
		l.host.cacheOK, l.host.cacheTIDList, l.host.cachePIDList = false, nil, nil
		if len(l.host.lists) == 0 {
			delete(x.hosts, l.host.name)
			if x.lastHost == l.host {
				x.lastHost = nil
			}
		}
	}
}

// endHeap orders retained spans by end time, for eviction.
type endHeap []*entry

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(i, j int) bool { return h[i].s.EndNs < h[j].s.EndNs }
func (h endHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(v any)        { *h = append(*h, v.(*entry)) }
func (h *endHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
