package causal

import (
	"fmt"
	"strconv"

	"github.com/kprobe/kprobe/pipeline/event"
)

// analyzer attributes one subject's time; it memoizes causes by key so that marks of one
// cause share one causeInfo.
type analyzer struct {
	idx    *Index
	causes map[string]*causeInfo
	// preemptors counts, per CPU, who preempted the subject's threads: the best guess
	// for who held a CPU the thread waited for after a wake-up.
	preemptors map[uint32]map[ProcKey]int64
	// nextComm weighs, per process not recorded, the names its threads had when they
	// took the CPU: the heaviest names it, whatever order the rules saw them in.
	nextComm map[ProcKey]map[string]int64
	depth    int // holders followed so far (waker chains)
	// horizon..until is what the analysis looks at (LookBehind before the subject to
	// LookAhead after it), whatever else the index still holds.
	horizon, until int64
}

func newAnalyzer(idx *Index) *analyzer {
	return &analyzer{idx: idx, causes: map[string]*causeInfo{}, preemptors: map[uint32]map[ProcKey]int64{}, nextComm: map[ProcKey]map[string]int64{}}
}

func (an *analyzer) cause(key string, mk func() *causeInfo) *causeInfo {
	if c := an.causes[key]; c != nil {
		return c
	}
	c := mk()
	c.key = key
	an.causes[key] = c
	return c
}

func (an *analyzer) proc(p ProcKey) *Proc {
	return &Proc{Node: p.Node, PID: p.PID, Comm: an.comm(p)}
}

// comm names a process: as recorded, else by the heaviest name its threads took the CPU
// under (ties: the first by name).
func (an *analyzer) comm(p ProcKey) string {
	if c := an.idx.CommIn(p, an.horizon, an.until); c != "" {
		return c
	}
	best, bestNs := "", int64(-1)
	for c, ns := range an.nextComm[p] {
		if ns > bestNs || ns == bestNs && c < best {
			best, bestNs = c, ns
		}
	}
	return best
}

func (an *analyzer) noteComm(p ProcKey, comm string, ns int64) {
	m := an.nextComm[p]
	if m == nil {
		m = map[string]int64{}
		an.nextComm[p] = m
	}
	m[comm] += ns
}

// threadMarks attributes the thread's time in [from, to). conf and join say how the
// thread was tied to the subject.
func (an *analyzer) threadMarks(v *threadView, from, to int64, conf float64, join string) []mark {
	var marks []mark
	for _, o := range v.offs {
		if o.e.Preempted && o.e.NextPID != 0 {
			p := ProcKey{v.k.Node, o.e.NextPID}
			m := an.preemptors[o.e.CPU]
			if m == nil {
				m = map[ProcKey]int64{}
				an.preemptors[o.e.CPU] = m
			}
			m[p] += o.b - o.a
			an.noteComm(p, o.e.NextComm, o.b-o.a)
		}
	}
	var episode []offIv
	flush := func() {
		if len(episode) > 0 {
			marks = append(marks, an.episode(v, episode, conf, join)...)
			episode = episode[:0]
		}
	}
	for _, o := range v.offs {
		if o.b <= from || o.a >= to {
			continue
		}
		if o.wake < o.b {
			marks = append(marks, an.cpuMark(v, o, conf, join))
		}
		if o.a >= o.wake {
			continue
		}
		if s := v.syscallAt(o.a); s != nil {
			flush()
			marks = append(marks, an.inSyscall(v, s, o, conf, join)...)
			continue
		}
		if n := len(episode); n > 0 {
			prev := episode[n-1].b
			act, ok := v.firstAfter(prev)
			if ok && act.a < o.a || v.onCPU(prev, o.a) > episodeGapNs || lastEvent(v.faults, o.a) != nil && lastEvent(v.faults, o.a).TsNs >= prev {
				flush()
			}
		}
		episode = append(episode, o)
	}
	flush()
	for i := range v.syscalls {
		s := &v.syscalls[i]
		if s.socket != nil || s.b <= from || s.a >= to || s.e.Ino == 0 {
			continue
		}
		marks = append(marks, mark{a: s.a, b: s.b, prio: prioFileIO, c: an.fileCause(v.k, s.e),
			rule: RuleFileSyscall, conf: conf, join: join, ev: []uint64{s.e.ID}})
	}
	// Fault runs: one mark per run of faults each close to the last.
	for i := 0; i+1 < len(v.faults); {
		j := i
		for j+1 < len(v.faults) && v.onCPU(v.faults[j].TsNs, v.faults[j+1].TsNs) <= faultGapNs {
			j++
		}
		if j > i && v.faults[j].TsNs > from && v.faults[i].TsNs < to {
			ev := make([]uint64, 0, 8)
			for _, f := range v.faults[i:min(j+1, i+8)] {
				ev = append(ev, f.ID)
			}
			marks = append(marks, mark{a: v.faults[i].TsNs, b: v.faults[j].TsNs, prio: prioFaultRun, c: an.memoryCause(v.k),
				rule: RuleFaultRun, conf: conf * 0.9, join: join, ev: ev})
		}
		i = j + 1
	}
	return marks
}

// cpuMark: the runnable part of a switch-out. Preempted, the task that took the CPU held
// it; woken and waiting, the best guess is whoever preempted this thread on that CPU.
func (an *analyzer) cpuMark(v *threadView, o offIv, conf float64, join string) mark {
	rule := RuleRunQueue
	holder := ProcKey{}
	if o.e.Preempted {
		rule = RulePreempted
		if o.e.NextPID != 0 {
			holder = ProcKey{v.k.Node, o.e.NextPID}
		}
	} else {
		conf *= 0.8
		var best int64
		for p, ns := range an.preemptors[o.e.CPU] {
			if ns > best || (ns == best && p.PID < holder.PID) {
				holder, best = p, ns
			}
		}
		if best == 0 && o.e.NextPID != 0 {
			holder = ProcKey{v.k.Node, o.e.NextPID}
			an.noteComm(holder, o.e.NextComm, o.b-o.a)
		}
	}
	cpu := "cpu " + strconv.FormatUint(uint64(o.e.CPU), 10)
	var c *causeInfo
	if holder.PID == 0 {
		c = an.cause(KindCPU+"|"+v.k.Node+"|"+cpu, func() *causeInfo {
			return &causeInfo{kind: KindCPU, resource: cpu + " run queue", resourceID: "cpu/" + v.k.Node + "/" + cpu[4:],
				resNode: &Node{ID: "cpu/" + v.k.Node + "/" + cpu[4:], Label: LabelCPU, Props: map[string]string{"node": v.k.Node, "cpu": cpu[4:]}}}
		})
	} else {
		c = an.cause(KindCPU+"|"+v.k.Node+"|"+strconv.FormatUint(uint64(holder.PID), 10), func() *causeInfo {
			return &causeInfo{kind: KindCPU, proc: an.proc(holder), resource: cpu,
				resourceID: "cpu/" + v.k.Node + "/" + cpu[4:],
				resNode:    &Node{ID: "cpu/" + v.k.Node + "/" + cpu[4:], Label: LabelCPU, Props: map[string]string{"node": v.k.Node, "cpu": cpu[4:]}}}
		})
	}
	return mark{a: o.wake, b: o.b, prio: prioRunnable, c: c, rule: rule, conf: conf, join: join, ev: []uint64{o.e.ID}}
}

// inSyscall: blocked inside a traced read/write: on a file that is storage, on a socket
// it is the peer.
func (an *analyzer) inSyscall(v *threadView, s *syscallIv, o offIv, conf float64, join string) []mark {
	if s.socket == nil {
		if s.e.Ino == 0 {
			return []mark{an.unexplainedBlocked(o, conf, join)}
		}
		return []mark{{a: o.a, b: o.wake, prio: prioBlocked, c: an.fileCause(v.k, s.e), rule: RuleFileSyscall,
			conf: conf, join: join, ev: []uint64{s.e.ID, o.e.ID}}}
	}
	// Blocked receiving, or sending into a full buffer: either way the peer.
	return an.peerMarks(v, interval{o.a, o.wake}, TupleOf(s.socket), s.socket, o.e.ID, conf, join)
}

// episode classifies a run of blocks with no traced I/O between them by what ended it
// (a reply on a socket), what began it (file I/O, a page fault) and who woke it.
func (an *analyzer) episode(v *threadView, ep []offIv, conf float64, join string) []mark {
	first, last := ep[0], ep[len(ep)-1]
	if act, ok := v.firstAfter(last.b); ok && v.onCPU(last.b, act.a) <= recvAfterWakeNs {
		recv := act.tcp
		if act.sys != nil {
			recv = act.sys.socket
		}
		if recv != nil && recv.Type == event.TypeTCPRecv && recv.Errno == 0 && recv.Bytes > 0 {
			return an.peerMarks(v, interval{first.a, last.wake}, TupleOf(recv), recv, ep[0].e.ID, conf, join)
		}
	}
	before, hasBefore := v.lastBefore(first.a)
	userWaker := last.e.WakerPID != 0 && last.e.WakerTID != v.k.TID && an.idx.KnownIn(ProcKey{v.k.Node, last.e.WakerPID}, an.horizon, an.until)
	// The whole episode, on-CPU moments between its blocks included, goes to one cause
	// (the runnable parts are CPU contention all the same: their marks rank higher).
	ev := make([]uint64, 0, min(len(ep), 8)+1)
	for _, o := range ep[:min(len(ep), 8)] {
		ev = append(ev, o.e.ID)
	}
	whole := func(a int64, c *causeInfo, rule string, conf float64, join string, more ...uint64) []mark {
		return []mark{{a: a, b: last.wake, prio: prioBlocked, c: c, rule: rule, conf: conf, join: join, ev: append(ev, more...)}}
	}
	io, hasIO := v.lastFileIOBefore(first.a)
	flush := hasIO && v.onCPU(io.b, first.a) <= shadowNs
	faulted := hasBefore && before.pf != nil && v.onCPU(before.b, first.a) <= faultShadowNs
	switch {
	case flush && !userWaker && (before.sys == io || faulted):
		// Flushing what was just written (fsync is not traced): the on-CPU part of the
		// flush counts too. A fault on the way into the block does not change that: the
		// flush is the likelier wait, and a major fault is file I/O too.
		more := []uint64{io.e.ID}
		if faulted {
			more = append(more, before.pf.ID)
		}
		return whole(io.b, an.fileCause(v.k, io.e), RuleAfterFileWrite, conf*0.7, JoinTimeOverlap, more...)
	case faulted && !(userWaker && last.e.WakerPID != v.k.PID):
		// Blocked inside the fault handler (I/O, reclaim, or the mm lock another thread
		// of the process holds while it maps or unmaps): memory. Not when another
		// recorded process woke it: no fault waits on another process's user thread (the
		// mm lock is the process's own; I/O completes from interrupts), so the fault was
		// on the way into a wait for something that process held (a file lock, a futex in
		// shared memory).
		return whole(first.a, an.memoryCause(v.k), RuleBlockedInFault, conf*0.7, join, before.pf.ID)
	case userWaker:
		holder := ThreadKey{v.k.Node, last.e.WakerPID, last.e.WakerTID}
		return an.holderMarks(holder, interval{first.a, last.wake}, RuleWaker, conf*0.9, JoinWaker, ev)
	case last.e.WakerPID == 0:
		if holder, ok := an.soleRunner(v.k, last.wake); ok {
			return an.holderMarks(holder, interval{first.a, last.wake}, RuleInferredWaker, conf*0.6, JoinTimeOverlap, ev)
		}
	}
	out := make([]mark, 0, len(ep))
	for _, o := range ep {
		out = append(out, an.unexplainedBlocked(o, conf, join))
	}
	return out
}

// holderMarks follows the waker chain: the thread that woke ours held what it waited for,
// and what the holder did meanwhile is classified by the same rules. Where the holder was
// itself waiting on something the kernel shows (a CPU, a file, a peer, page faults, a
// further holder), that is the cause, reached through the holder; where it was working on
// CPU or blocked for no recorded reason, it held the lock: lock contention, naming it.
func (an *analyzer) holderMarks(holder ThreadKey, iv interval, rule string, conf float64, join string, ev []uint64) []mark {
	lock := mark{c: an.lockCause(holder), rule: rule, conf: conf, join: join, ev: ev}
	if an.depth >= maxWakerChain {
		lock.a, lock.b, lock.prio = iv.a, iv.b, prioBlocked
		return []mark{lock}
	}
	an.depth++
	defer func() { an.depth-- }()
	hv := an.idx.view(holder, iv.a, iv.b, an.horizon)
	var out []mark
	for _, m := range resolve(an.threadMarks(hv, iv.a, iv.b, conf, join), iv.a, iv.b, &lock) {
		if holderEvidence[m.rule] {
			m.c = an.through(m.c, lock.c)
		} else {
			m.c, m.rule, m.conf, m.join = lock.c, lock.rule, lock.conf, lock.join
		}
		m.prio = prioBlocked
		m.ev = append(ev[:len(ev):len(ev)], m.ev...)
		out = append(out, m)
	}
	return out
}

// through is cause c of a holder's time as the waiting thread sees it: reached through
// the lock the holder held, which its path names before the root.
func (an *analyzer) through(c, lock *causeInfo) *causeInfo {
	if c == lock {
		return c
	}
	return an.cause(c.key+"|via|"+lock.key, func() *causeInfo {
		via := *c
		via.via = append([]*causeInfo{lock}, c.via...)
		return &via
	})
}

// holderEvidence are the rules whose finding about a holder's thread stands on an event
// of its own (a switch-out while runnable, a syscall it was in or the flush right after
// one, a fault run or the block right after a fault). A holder
// thread merely blocked is not trusted further: under a runtime that moves work between
// threads (Go, a JVM), the thread that let go is often not the one that did the work, and
// its idle blocks say nothing about why the lock was held.
var holderEvidence = map[string]bool{RulePreempted: true, RuleRunQueue: true, RuleFileSyscall: true,
	RuleAfterFileWrite: true, RulePeerWait: true, RuleFaultRun: true, RuleBlockedInFault: true, RuleWaker: true}

// maxWakerChain bounds how many holders deep a wait is followed.
const maxWakerChain = 3

// wakeSlackNs: the waker acted a little before the woken thread's wake-up was recorded
// (remote wake-ups are queued to the woken thread's CPU).
const wakeSlackNs = 50_000

// soleRunner finds the one recorded process (other than the woken thread) that ran just
// before a wake-up the kernel did not attribute: the only candidate for the waker.
func (an *analyzer) soleRunner(self ThreadKey, wake int64) (ThreadKey, bool) {
	var found ThreadKey
	n := 0
	for _, k := range an.idx.OnCPU(self.Node, wake-wakeSlackNs, wake) {
		if k == self {
			continue
		}
		if n == 0 || k.PID != found.PID {
			n++
		}
		if n == 1 {
			found = k
		}
	}
	return found, n == 1
}

func (an *analyzer) unexplainedBlocked(o offIv, conf float64, join string) mark {
	return mark{a: o.a, b: o.wake, prio: prioBlocked, c: an.unexplained(), rule: RuleRemainder, conf: conf, join: join, ev: []uint64{o.e.ID}}
}

func (an *analyzer) unexplained() *causeInfo {
	return an.cause(KindUnexplained, func() *causeInfo { return &causeInfo{kind: KindUnexplained} })
}

func (an *analyzer) fileCause(k ThreadKey, e *event.Event) *causeInfo {
	f := FileKey{k.Node, e.Dev, e.Ino}
	id := fmt.Sprintf("file/%s/%d/%d", f.Node, f.Dev, f.Ino)
	return an.cause(KindStorage+"|"+id, func() *causeInfo {
		res := fmt.Sprintf("file dev %d:%d inode %d", devMajor(e.Dev), devMinor(e.Dev), e.Ino)
		return &causeInfo{kind: KindStorage, proc: an.proc(k.Proc()), resource: res, resourceID: id, file: &f,
			resNode: &Node{ID: id, Label: LabelFile, Props: map[string]string{"node": f.Node,
				"dev": strconv.FormatUint(f.Dev, 10), "inode": strconv.FormatUint(f.Ino, 10), "name": res}}}
	})
}

func (an *analyzer) memoryCause(k ThreadKey) *causeInfo {
	return an.cause(KindMemory+"|"+k.Node+"|"+strconv.FormatUint(uint64(k.PID), 10), func() *causeInfo {
		return &causeInfo{kind: KindMemory, proc: an.proc(k.Proc()), resource: "page faults"}
	})
}

func (an *analyzer) lockCause(holder ThreadKey) *causeInfo {
	return an.cause(KindLock+"|"+holder.Node+"|"+strconv.FormatUint(uint64(holder.PID), 10), func() *causeInfo {
		return &causeInfo{kind: KindLock, proc: an.proc(holder.Proc()),
			resource: fmt.Sprintf("held by tid %d", holder.TID), detail: "woken by tid " + strconv.FormatUint(uint64(holder.TID), 10)}
	})
}

// Linux's dev_t as stat(2) reports it (new_encode_dev).
func devMajor(d uint64) uint64 { return (d>>8)&0xfff | (d>>32)&^uint64(0xfff) }
func devMinor(d uint64) uint64 { return d&0xff | (d>>12)&^uint64(0xff) }
