package correlate

import (
	"sort"

	"github.com/kprobe/kprobe/pipeline/event"
)

// The thread table: what the kernel events say about each process's threads. Spans
// name threads in the runtime's terms (a JVM's thread number, a thread name), and carry
// no thread at all by default in some SDKs; the table is how the correlator checks a
// span's thread.id against the OS threads, matches thread.name to the thread's comm, and
// tells which threads were on a CPU when a span started and ended.

const (
	// threadIdle is how long a thread may go without an event before it is forgotten
	// (its tid may be reused, its name may be taken by another).
	threadIdle = int64(10 * 60 * 1e9)
	// offCPUKeep is how far behind the watermark off-CPU intervals are kept: enough for
	// the start of any span still retained, short enough to stay small.
	offCPUKeep = int64(60 * 1e9)
	// onCPUSlack absorbs the clock conversion between the SDK's clock and the kernel's:
	// a time this close to an off-CPU interval's edge is not taken as inside it.
	onCPUSlack = int64(100_000)
)

// offInterval is one off-CPU stretch of a thread, [out, in], from a sched_switch event.
type offInterval struct{ out, in int64 }

type thread struct {
	comm      string
	firstTs   int64
	lastTs    int64
	off       []offInterval // by out, ascending
	offPruned bool          // intervals before off[0] were dropped
}

// procThreads holds one process's threads.
type procThreads struct {
	threads map[uint32]*thread
	byComm  map[string]int // how many live threads bear each name
}

func newProcThreads() *procThreads {
	return &procThreads{threads: make(map[uint32]*thread), byComm: make(map[string]int)}
}

// see records one event of the process.
func (p *procThreads) see(ev *event.Event) {
	th := p.threads[ev.TID]
	if th == nil {
		th = &thread{comm: ev.Comm, firstTs: ev.TsNs, lastTs: ev.TsNs}
		p.threads[ev.TID] = th
		p.byComm[ev.Comm]++
	}
	th.observe(p, ev)
}

func (th *thread) observe(p *procThreads, ev *event.Event) {
	if ev.Comm != th.comm && ev.Comm != "" && ev.TsNs >= th.lastTs {
		// Renamed (a JVM names its threads after they start).
		p.byComm[th.comm]--
		if p.byComm[th.comm] <= 0 {
			delete(p.byComm, th.comm)
		}
		th.comm = ev.Comm
		p.byComm[th.comm]++
	}
	th.firstTs = min(th.firstTs, ev.TsNs)
	th.lastTs = max(th.lastTs, ev.TsNs)
	if ev.Type != event.TypeSchedSwitch {
		return
	}
	iv := offInterval{out: ev.TsNs, in: ev.TsNs + int64(ev.DurNs)}
	th.lastTs = max(th.lastTs, iv.in)
	n := len(th.off)
	if n == 0 || th.off[n-1].out < iv.out {
		th.off = append(th.off, iv)
		return
	}
	i := sort.Search(n, func(i int) bool { return th.off[i].out >= iv.out })
	if th.off[i].out == iv.out {
		return // the same event again (a redelivered batch)
	}
	th.off = append(th.off, offInterval{})
	copy(th.off[i+1:], th.off[i:])
	th.off[i] = iv
}

// cpuState says whether a thread is known to have been on a CPU at a time.
type cpuState uint8

const (
	cpuUnknown cpuState = iota
	cpuOn
	cpuOff
)

// at tells whether the thread was running at t, from its off-CPU intervals: inside one
// it was off; between two it was on; after the last one it may have left again without
// the recorder having said so yet, so it is unknown.
func (th *thread) at(t int64) cpuState {
	off := th.off
	i := sort.Search(len(off), func(i int) bool { return off[i].out > t }) // first leaving after t
	if i > 0 {
		prev := off[i-1]
		if t < prev.in {
			if t > prev.out+onCPUSlack && t < prev.in-onCPUSlack {
				return cpuOff
			}
			return cpuUnknown
		}
	} else if th.offPruned || th.firstTs > t {
		return cpuUnknown
	}
	if i < len(off) {
		return cpuOn // between the previous interval (or its first sighting) and the next
	}
	return cpuUnknown
}

// prune forgets intervals that ended before horizon and threads idle since idleBefore.
func (p *procThreads) prune(horizon, idleBefore int64) {
	for tid, th := range p.threads {
		if th.lastTs < idleBefore {
			delete(p.threads, tid)
			p.byComm[th.comm]--
			if p.byComm[th.comm] <= 0 {
				delete(p.byComm, th.comm)
			}
			continue
		}
		k := 0
		for k < len(th.off) && th.off[k].in < horizon {
			k++
		}
		if k > 0 {
			th.off = append(th.off[:0], th.off[k:]...)
			th.offPruned = true
		}
	}
}

// commLen is what the kernel keeps of a thread name.
const commLen = 15

func kernelComm(name string) string {
	if len(name) > commLen {
		return name[:commLen]
	}
	return name
}
