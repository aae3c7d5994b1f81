package causal

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kprobe/kprobe/pipeline/event"
)

// The rule tests build what the recorder reports for a thread (switches with their
// preempted/waker/runq fields, reads and writes with dev+inode, fallback tcp events with
// dur 0, page faults with dur 0) and check the ranked causes.

type want struct {
	kind     string
	pid      uint32 // of Process; 0: no process named
	resource string // substring of Resource
	ns       int64  // ExplainedNs, exactly
}

func checkTop(t *testing.T, r Result, w want) {
	t.Helper()
	checkSharesAddUp(t, r)
	c := topCause(t, r)
	var pid uint32
	if c.Process != nil {
		pid = c.Process.PID
	}
	got := want{kind: c.Kind, pid: pid, resource: w.resource, ns: c.ExplainedNs}
	if w.ns < 0 {
		got.ns = w.ns
	}
	if !strings.Contains(c.Resource, w.resource) {
		got.resource = c.Resource
	}
	if diff := cmp.Diff(w, got, cmp.AllowUnexported(want{})); diff != "" {
		t.Errorf("top cause (-want +got):\n%s\nall: %+v", diff, r.Causes)
	}
	if len(c.Evidence) == 0 || c.Rule == "" || c.Summary == "" || len(c.Path) < 2 || c.Path[0].Kind != "span" {
		t.Errorf("top cause lacks evidence, rule, summary or a path from its span: %+v", c)
	}
}

func TestCPUContention(t *testing.T) {
	w := newWorld()
	svc := w.thread(100, 101, "settlement-svc", t0)
	svc.run(2 * ms)
	svc.preempted(30*ms, 900, "hog")
	svc.run(3 * ms)
	svc.preempted(20*ms, 900, "hog")
	svc.preempted(1*ms, 950, "other")
	svc.run(1 * ms)
	r := Analyze(w.index(), settlement(svc, "1", t0))
	checkTop(t, r, want{kind: KindCPU, pid: 900, resource: "cpu 0", ns: 50 * ms})
	if r.DurationNs != 57*ms || r.Causes[1].Kind != KindUnexplained || r.Causes[1].ExplainedNs != 6*ms {
		t.Errorf("duration %d, second cause %+v: want 57ms and 6ms unexplained", r.DurationNs, r.Causes[1])
	}
	if c := r.Causes[0]; c.WhatIfNs != 7*ms || c.Process.Comm != "hog" || c.Rule != RulePreempted || c.Join != JoinTID {
		t.Errorf("cpu cause: what-if %d comm %q rule %q join %q", c.WhatIfNs, c.Process.Comm, c.Rule, c.Join)
	}
}

// TestUnrecordedHolderNamedByItsHeaviestName: a process that was not recorded is known
// only by the names its threads had when they took the CPU; the one it held the CPU
// longest under names it, in whichever order the switches came.
func TestUnrecordedHolderNamedByItsHeaviestName(t *testing.T) {
	for _, order := range [][]string{{"raft-io", "metadata", "metadata"}, {"metadata", "metadata", "raft-io"}} {
		w := newWorld()
		svc := w.thread(100, 101, "settlement-svc", t0)
		svc.run(1 * ms)
		for i, name := range order {
			svc.preempted(int64(10+i)*ms, 900, name)
			svc.run(1 * ms)
		}
		c := topCause(t, Analyze(w.index(), settlement(svc, "1", t0)))
		if c.Process == nil || c.Process.PID != 900 || c.Process.Comm != "metadata" || !strings.Contains(c.Summary, "metadata (pid 900") {
			t.Errorf("switches named %v: top cause %+v, want pid 900 named metadata", order, c)
		}
	}
}

func TestStorage(t *testing.T) {
	w := newWorld()
	svc := w.thread(100, 101, "settlement-svc", t0)
	svc.run(1 * ms)
	// A write that blocks inside, then its flush (fsync is not traced): blocked right
	// after, woken by a kernel worker that is not recorded.
	svc.write(0xfe00, 42, 256<<10, 2*ms, func() { svc.run(100 * us); svc.blocked(5*ms, 0, 0, 0) })
	svc.run(50 * us)
	svc.blocked(40*ms, 0, 77, 77)
	svc.run(1 * ms)
	r := Analyze(w.index(), settlement(svc, "1", t0))
	checkTop(t, r, want{kind: KindStorage, pid: 100, resource: "file dev 254:0 inode 42", ns: 5100*us + 40050*us})
}

// TestStorageFlushAfterAFault: a write, a page fault on the way to fsync (not traced),
// then the block: the flush of the write, not the fault.
func TestStorageFlushAfterAFault(t *testing.T) {
	w := newWorld()
	svc := w.thread(100, 101, "svc", t0)
	svc.run(1 * ms)
	for range 4 {
		svc.write(0xfe00, 42, 64<<10, 30*us, nil)
		svc.run(20 * us)
		svc.fault()
		svc.run(2 * us)
		svc.blocked(8*ms, 0, 0, 0) // fsync, woken by a kernel worker not recorded
		svc.run(100 * us)
	}
	r := Analyze(w.index(), settlement(svc, "1", t0))
	checkTop(t, r, want{kind: KindStorage, pid: 100, resource: "file dev 254:0 inode 42", ns: -1})
	if c := r.Causes[0]; c.Rule != RuleAfterFileWrite || c.ExplainedNs < 32*ms {
		t.Errorf("top cause %s explains %d, want the four 8 ms flushes by %s", c.Rule, c.ExplainedNs, RuleAfterFileWrite)
	}
}

func TestSlowPeerTwoHops(t *testing.T) {
	w := newWorld()
	u1 := tuple("127.0.0.1:40000", "127.0.0.1:7000") // service -> gateway
	u2 := tuple("127.0.0.1:40001", "127.0.0.1:7301") // gateway -> bank
	svc := w.thread(100, 101, "settlement-svc", t0)
	gw := w.thread(200, 201, "gateway", 0)
	bank := w.thread(300, 301, "bank", 0)

	svc.run(1 * ms)
	svc.send(u1, 20)
	svc.recvAgain(u1)
	blockAt := svc.t
	gw.t = svc.t + 20*us
	gw.recv(u1.Reverse(), 20)
	gw.run(100 * us)
	gw.send(u2, 20)
	gw.recvAgain(u2)
	gwBlock := gw.t
	bank.t = gw.t + 20*us
	bank.recv(u2.Reverse(), 20)
	bank.blocked(200*ms, 5*us, 0, 0) // sitting on the request
	bank.run(50 * us)
	bank.send(u2.Reverse(), 5)
	gw.t = gwBlock
	gw.blocked(bank.t+15*us-gwBlock, 10*us, 0, 0)
	gw.recv(u2, 5)
	gw.run(100 * us)
	gw.send(u1.Reverse(), 5)
	svc.blocked(gw.t+15*us-blockAt, 10*us, 0, 0)
	svc.recv(u1, 5)
	svc.run(1 * ms)

	r := Analyze(w.index(), settlement(svc, "1", t0))
	checkTop(t, r, want{kind: KindSlowPeer, pid: 300, resource: u2.String(), ns: -1})
	c := r.Causes[0]
	if c.ExplainedNs < 200*ms || c.ExplainedNs > 201*ms {
		t.Errorf("bank explains %d ns, want its 200ms and the hop's transit", c.ExplainedNs)
	}
	var kinds []string
	for _, s := range c.Path {
		kinds = append(kinds, s.Kind)
	}
	if diff := cmp.Diff([]string{"span", "tcp_wait", "process", "tcp_wait", "process"}, kinds); diff != "" {
		t.Errorf("path (-want +got):\n%s", diff)
	}
	if c.Path[2].Process.PID != 200 || c.Path[4].Process.PID != 300 {
		t.Errorf("path goes through %v then %v, want the gateway then the bank", c.Path[2].Process, c.Path[4].Process)
	}
	// The gateway only forwarded: it is named for its own few hundred µs, not the wait.
	for _, c := range r.Causes[1:] {
		if c.Kind == KindSlowPeer && c.Process != nil && c.Process.PID == 200 && c.ExplainedNs > ms {
			t.Errorf("the gateway explains %d ns: a forwarder is not the cause", c.ExplainedNs)
		}
	}
}

func TestSlowPeerNotRecorded(t *testing.T) {
	w := newWorld()
	u := tuple("10.0.0.1:40000", "10.0.0.9:5432")
	svc := w.thread(100, 101, "svc", t0)
	svc.run(1 * ms)
	svc.send(u, 100)
	svc.blocked(80*ms, 0, 0, 0)
	svc.recv(u, 100)
	svc.run(1 * ms)
	r := Analyze(w.index(), settlement(svc, "1", t0))
	checkTop(t, r, want{kind: KindSlowPeer, resource: u.String(), ns: 80 * ms})
	if !strings.Contains(r.Causes[0].Summary, "not recorded") {
		t.Errorf("summary %q should say the peer was not recorded", r.Causes[0].Summary)
	}
}

func TestMemoryFaultStorm(t *testing.T) {
	w := newWorld()
	svc := w.thread(100, 101, "svc", t0)
	svc.run(1 * ms)
	for range 20000 {
		svc.fault()
		svc.run(3 * us)
	}
	svc.run(1 * ms)
	r := Analyze(w.index(), settlement(svc, "1", t0))
	checkTop(t, r, want{kind: KindMemory, pid: 100, resource: "page faults", ns: 19999 * 3 * us})
}

func TestMemoryBlockedInFault(t *testing.T) {
	w := newWorld()
	svc := w.thread(100, 101, "svc", t0)
	svc.run(1 * ms)
	for range 10 {
		svc.fault()
		svc.run(2 * us)
		svc.blocked(5*ms, 0, 0, 0) // a major fault waiting for its page
		svc.run(500 * us)
	}
	r := Analyze(w.index(), settlement(svc, "1", t0))
	checkTop(t, r, want{kind: KindMemory, pid: 100, resource: "page faults", ns: 50 * ms})
	if c := r.Causes[0]; c.Rule != RuleBlockedInFault {
		t.Errorf("rule %q, want %q", c.Rule, RuleBlockedInFault)
	}
}

func TestLockContention(t *testing.T) {
	for _, tt := range []struct {
		name       string
		waker      uint32
		rule       string
		holderPrmt bool // the holder was preempted for part of the wait
		faulted    bool // the waiting thread took a page fault just before it blocked
	}{
		{name: "waker reported", waker: 401, rule: RuleWaker},
		{name: "a page fault just before the wait", waker: 401, rule: RuleWaker, faulted: true},
		{name: "waker not reported, holder the one running", waker: 0, rule: RuleInferredWaker},
		{name: "holder itself waiting for a CPU", waker: 401, rule: RuleWaker, holderPrmt: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			svc := w.thread(100, 101, "svc", t0)
			holder := w.thread(400, 401, "reconciler", t0)
			holder.write(0xfe00, 7, 10, 10*us, nil) // it is recorded, doing its own work
			svc.run(1 * ms)
			waitStart := svc.t
			// The holder works on CPU while holding, then lets go.
			if tt.holderPrmt {
				holder.t = waitStart + 10*ms
				holder.preempted(30*ms, 900, "hog")
			}
			holder.t = waitStart + 60*ms
			holder.blocked(39*ms, 0, 0, 0) // sleeps holding it, runs again just before release
			holder.run(2 * ms)
			holder.write(0xfe00, 7, 10, 10*us, nil)
			var wakerPID uint32
			if tt.waker != 0 {
				wakerPID = 400
			}
			if tt.faulted {
				svc.t -= 2 * us
				svc.fault() // touching a fresh page on the way to the lock call
				svc.run(2 * us)
			}
			svc.blocked(100*ms, 20*us, wakerPID, tt.waker)
			svc.run(1 * ms)
			r := Analyze(w.index(), settlement(svc, "1", t0))
			wantNs := 100*ms - 20*us
			if tt.holderPrmt {
				wantNs -= 30 * ms
			}
			checkTop(t, r, want{kind: KindLock, pid: 400, resource: "tid 401", ns: wantNs})
			if c := r.Causes[0]; c.Rule != tt.rule {
				t.Errorf("rule %q, want %q", c.Rule, tt.rule)
			}
			if tt.holderPrmt {
				if c := r.Causes[1]; c.Kind != KindCPU || c.Process == nil || c.Process.PID != 900 || c.ExplainedNs != 30*ms {
					t.Errorf("second cause %+v: want the holder's 30ms preempted by pid 900", c)
				}
			}
		})
	}
}

// TestLockHolderWaitingOnStorage: the settlement waits on a lock whose holder is itself
// flushing a file it just wrote (a log appended and fsynced under the lock). The root is
// the holder's storage wait, reached through the holder, as a slow peer is through its hops.
func TestLockHolderWaitingOnStorage(t *testing.T) {
	w := newWorld()
	svc := w.thread(100, 101, "svc", t0)
	holder := w.thread(400, 401, "journaler", t0)
	holder.write(0xfe00, 7, 10, 10*us, nil)
	svc.run(1 * ms)
	waitStart := svc.t
	holder.t = waitStart + 5*ms
	holder.write(0xfe00, 9, 256<<10, 100*us, nil)
	holder.run(50 * us)
	holder.blocked(80*ms, 0, 0, 0) // its fsync (not traced), woken by the disk's interrupt
	holder.run(1 * ms)
	svc.blocked(90*ms, 20*us, 400, 401)
	svc.run(1 * ms)
	r := Analyze(w.index(), settlement(svc, "1", t0))
	checkTop(t, r, want{kind: KindStorage, pid: 400, resource: "inode 9", ns: 100*us + 50*us + 80*ms})
	c := r.Causes[0]
	var steps []string
	for _, s := range c.Path {
		steps = append(steps, s.Kind+" "+s.Name)
	}
	wantSteps := []string{"span settlement.process", "lock held by tid 401", "process journaler", "file file dev 254:0 inode 9"}
	if diff := cmp.Diff(wantSteps, steps); diff != "" || c.Rule != RuleAfterFileWrite || !strings.Contains(c.Summary, "reached through journaler (pid 400") {
		t.Errorf("rule %q (want %q), summary %q, path (-want +got):\n%s", c.Rule, RuleAfterFileWrite, c.Summary, diff)
	}
	if c := r.Causes[1]; c.Kind != KindLock || c.Process == nil || c.Process.PID != 400 {
		t.Errorf("second cause %+v: want the rest of the wait on the lock journaler held", c)
	}
}

// A block whose waker is not recorded and with no I/O around it stays unexplained: the
// rules do not guess.
func TestUnexplainedSleep(t *testing.T) {
	w := newWorld()
	svc := w.thread(100, 101, "svc", t0)
	other := w.thread(500, 501, "busy", t0)
	other.run(1 * ms)
	other.fault()
	svc.run(1 * ms)
	svc.blocked(30*ms, 0, 0, 0)
	svc.run(1 * ms)
	other.t = svc.t + 5*ms // another recorded process far from the wake-up
	other.fault()
	r := Analyze(w.index(), settlement(svc, "1", t0))
	checkTop(t, r, want{kind: KindUnexplained, ns: 32 * ms})
}

// Two processes running when the unattributed wake-up happened: no single holder.
func TestInferredWakerAmbiguous(t *testing.T) {
	w := newWorld()
	svc := w.thread(100, 101, "svc", t0)
	svc.run(1 * ms)
	wake := svc.t + 30*ms
	for i, pid := range []uint32{400, 600} {
		h := w.thread(pid, pid+1, "h", wake-5*ms)
		h.blocked(4*ms+int64(i)*us, 0, 0, 0)
		h.run(3 * ms)
		h.fault()
	}
	svc.blocked(30*ms, 0, 0, 0)
	svc.run(1 * ms)
	r := Analyze(w.index(), settlement(svc, "1", t0))
	checkTop(t, r, want{kind: KindUnexplained, ns: 32 * ms})
}

// Spans nested on one thread: the cause's span is the innermost where its time fell,
// and an object made of two spans with a gap explains the gap as unexplained.
func TestInnermostSpanAndGaps(t *testing.T) {
	w := newWorld()
	svc := w.thread(100, 101, "svc", t0)
	svc.run(1 * ms)
	childStart := svc.t
	svc.preempted(10*ms, 900, "hog")
	childEnd := svc.t
	svc.run(1 * ms)
	sub := settlement(svc, "1", t0)
	child := sub.Spans[0]
	child.SpanID, child.ParentID, child.Name, child.StartNs, child.EndNs = "c1", sub.Spans[0].SpanID, "ledger.write", childStart, childEnd
	child.Attrs = nil
	sub.Spans = append(sub.Spans, child)
	// A second top span of the same settlement later (a retry), after a 5ms gap.
	second := sub.Spans[0]
	second.SpanID, second.StartNs = "s1b", svc.t+5*ms
	svc.t += 5 * ms
	svc.run(2 * ms)
	second.EndNs = svc.t
	sub.Spans = append(sub.Spans, second)
	r := Analyze(w.index(), sub)
	checkTop(t, r, want{kind: KindCPU, pid: 900, resource: "cpu", ns: 10 * ms})
	if c := r.Causes[0]; c.SpanName != "ledger.write" || c.Path[0].Name != "ledger.write" {
		t.Errorf("cause in span %q (path from %q), want the innermost ledger.write", c.SpanName, c.Path[0].Name)
	}
	if r.DurationNs != 19*ms {
		t.Errorf("duration %d, want 19ms from the first span's start to the second's end", r.DurationNs)
	}
}

// A span that names no thread runs on the thread of its process that did its work.
func TestPIDOnlySpan(t *testing.T) {
	w := newWorld()
	idle := w.thread(100, 102, "svc", t0)
	idle.blocked(50*ms, 0, 0, 0) // an idle runtime thread: blocked the whole time
	svc := w.thread(100, 101, "svc", t0)
	svc.traceID, svc.spanID = "t1", "s1"
	svc.run(1 * ms)
	svc.write(0xfe00, 42, 4096, 30*ms, nil)
	svc.run(1 * ms)
	sub := settlement(svc, "1", t0)
	sub.Spans[0].TID = 0
	r := Analyze(w.index(), sub)
	checkTop(t, r, want{kind: KindStorage, pid: 100, resource: "inode 42", ns: 30 * ms})
	if c := r.Causes[0]; c.Join != JoinPID || c.Confidence >= 1 {
		t.Errorf("join %q confidence %v: a pid-only span must say so and be less sure", c.Join, c.Confidence)
	}
	if r.TID != 101 {
		t.Errorf("subject thread %d, want 101 (the one that did the work)", r.TID)
	}
}

func TestEveryRuleExplained(t *testing.T) {
	for _, r := range []string{RulePreempted, RuleRunQueue, RuleFileSyscall, RuleAfterFileWrite, RulePeerWait,
		RuleFaultRun, RuleBlockedInFault, RuleWaker, RuleInferredWaker, RuleRemainder} {
		kind, _, ok := strings.Cut(r, "/")
		if RuleText[r] == "" || !ok {
			t.Errorf("rule %q: no RuleText or no kind/ prefix", r)
		}
		if !slices.Contains([]string{KindCPU, KindStorage, KindSlowPeer, KindMemory, KindLock, KindUnexplained}, kind) {
			t.Errorf("rule %q: prefix %q is not a cause kind", r, kind)
		}
	}
}

// A span's thread that hands work to another thread (a pool) and waits for it: the wait
// is explained by what that thread did, found through the waker chain.
func TestWaitOnAWorkerDoingIO(t *testing.T) {
	w := newWorld()
	svc := w.thread(100, 101, "svc", t0)
	pool := w.thread(100, 102, "svc", t0)
	svc.run(1 * ms)
	pool.t = svc.t + 100*us
	pool.write(0xfe00, 77, 1<<20, 45*ms, func() { pool.blocked(44*ms, 0, 0, 0) })
	pool.run(200 * us)
	svc.blocked(pool.t-svc.t, 10*us, 100, 102)
	svc.run(1 * ms)
	r := Analyze(w.index(), settlement(svc, "1", t0))
	checkTop(t, r, want{kind: KindStorage, pid: 100, resource: "inode 77", ns: 45 * ms})
	if c := r.Causes[0]; c.Join != JoinWaker {
		t.Errorf("join %q: found through the waker, want %q", c.Join, JoinWaker)
	}
}

// TestRankCausesIsTotal: causes explaining the same time rank by kind, resource, process
// and key, whatever order they come in (a drawn chain read back and one computed on
// demand must rank alike).
func TestRankCausesIsTotal(t *testing.T) {
	want := []Cause{
		{Key: "storage|f", Kind: KindStorage, ExplainedNs: 9},
		{Key: "cpu_contention|others", Kind: KindCPU, ExplainedNs: 5, Resource: "3 small causes: a, b"},
		{Key: "cpu_contention|vm|7", Kind: KindCPU, ExplainedNs: 5, Resource: "cpu 1", Process: &Proc{PID: 7}},
		{Key: "cpu_contention|vm|70", Kind: KindCPU, ExplainedNs: 5, Resource: "cpu 1", Process: &Proc{PID: 70}},
		{Key: "slow_peer|others", Kind: KindSlowPeer, ExplainedNs: 5, Resource: "2 small causes: x, y"},
		{Key: "unexplained", Kind: KindUnexplained, ExplainedNs: 5},
	}
	for shift := range want {
		got := append(slices.Clone(want[shift:]), want[:shift]...)
		slices.Reverse(got)
		RankCauses(got)
		if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(Cause{})); diff != "" {
			t.Errorf("from rotation %d (-want +got):\n%s", shift, diff)
		}
	}
}

// TestAnalysisDependsOnTheWindowAlone: the streaming engine keeps a minute of history, an
// on-demand chain reads a few seconds; both must compute the same chain. A long event
// well before the subject (a 3 s sleep) makes the index reach further back for that
// thread; an old preemption it then reaches must not become the guess for who held the
// CPU during the subject's run-queue wait. A process seen only long before the subject
// (its events are older than LookBehind) is not "recorded" for the subject: the thread
// it wakes is not waiting on a lock it held.
func TestAnalysisDependsOnTheWindowAlone(t *testing.T) {
	w := newWorld()
	old := w.thread(400, 400, "reconciler", t0-10_000*ms)
	old.write(0xfe00, 7, 10, 10*us, nil)
	oldEvents := len(w.evs)
	svc := w.thread(100, 101, "settlement-svc", t0)
	sleep := svc.blocked(3000*ms, 0, 0, 0)
	svc.run(100 * ms)
	svc.preempted(10*ms, 900, "hog") // a second before the subject
	svc.run(1000 * ms)
	start := svc.t
	svc.run(1 * ms)
	svc.blocked(5*ms, 4*ms, 0, 0)   // woken, then runnable 4 ms: who held the CPU?
	svc.blocked(20*ms, 0, 400, 400) // woken by a process last seen 14 s ago
	svc.run(1 * ms)
	sub := settlement(svc, "1", start)

	long := w.index()
	short := NewIndex()
	for _, e := range w.evs[oldEvents:] {
		if e.ID != sleep.ID {
			short.Add([]event.Event{e})
		}
	}
	got, want := Analyze(long, sub), Analyze(short, sub)
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(Cause{})); diff != "" {
		t.Errorf("with a 3 s sleep before the subject in the index (-without +with):\n%s", diff)
	}
	for _, c := range got.Causes {
		if c.Process != nil && (c.Process.PID == 900 || c.Process.PID == 400) {
			t.Errorf("a process seen only before the subject is blamed: %+v", c)
		}
	}
}
