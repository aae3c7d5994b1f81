package causal

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/kprobe/kprobe/pipeline/span"
)

// Cause kinds, one per rule family.
const (
	KindCPU         = "cpu_contention"
	KindSlowPeer    = "slow_peer"
	KindStorage     = "storage"
	KindMemory      = "memory"
	KindLock        = "lock_contention"
	KindUnexplained = "unexplained"
)

// Rules: how a stretch of a thread's time was attributed (the "rule" of an edge).
// RuleText says what each needs and does.
const (
	RulePreempted      = "cpu_contention/preempted"
	RuleRunQueue       = "cpu_contention/run-queue"
	RuleFileSyscall    = "storage/in-syscall"
	RuleAfterFileWrite = "storage/after-file-io"
	RulePeerWait       = "slow_peer/tcp-hops"
	RuleFaultRun       = "memory/fault-run"
	RuleBlockedInFault = "memory/blocked-in-fault"
	RuleWaker          = "lock_contention/waker"
	RuleInferredWaker  = "lock_contention/running-at-wake"
	RuleRemainder      = "unexplained/remainder"
)

// RuleText explains each rule: the kernel facts it reads and what it concludes.
var RuleText = map[string]string{
	RulePreempted:      "runnable but switched out for another task (sched_switch preempted; the holder is next_*)",
	RuleRunQueue:       "woken but waiting for a CPU (sched_switch runq_delay_ns; the holder is the task that preempted this thread most on that CPU)",
	RuleFileSyscall:    "inside a read/write on a file (dev, inode), on or off CPU",
	RuleAfterFileWrite: "blocked right after file I/O in no traced syscall, woken by no recorded thread (fsync and friends are not traced)",
	RulePeerWait:       "blocked until a reply on a TCP connection; the other end matched by reversed 4-tuple and time, hop by hop, to the process that spent the time",
	RuleFaultRun:       "on CPU between page faults that follow each other closely (faults carry no duration on tracepoint-only kernels)",
	RuleBlockedInFault: "blocked right after a page fault, in no syscall (a major fault, reclaim, or the mm lock)",
	RuleWaker:          "blocked until another recorded thread woke it (sched_switch waker_*); where that holder was itself waiting on something the kernel shows (a CPU, a file, a peer, page faults, a further holder), that, reached through the holder",
	RuleInferredWaker:  "blocked, the waker not reported (a wake-up queued to an idle CPU), and one recorded process alone was running when it was woken",
	RuleRemainder:      "on CPU in the service's own code, or blocked with nothing recorded to explain it",
}

// Joins: how the events behind a cause were tied to the subject.
const (
	JoinTID         = "tid"
	JoinPID         = "pid"
	JoinTuple       = "4-tuple"
	JoinWaker       = "waker"
	JoinTimeOverlap = "time-overlap"
)

// Proc names a process.
type Proc struct {
	Node string `json:"node"`
	PID  uint32 `json:"pid"`
	Comm string `json:"comm"`
}

// pid is 0 for no process (a cause naming a resource only).
func (p *Proc) pid() uint32 {
	if p == nil {
		return 0
	}
	return p.PID
}

func (p *Proc) String() string {
	if p == nil {
		return "unknown process"
	}
	if p.Comm == "" {
		return fmt.Sprintf("pid %d on %s", p.PID, p.Node)
	}
	return fmt.Sprintf("%s (pid %d on %s)", p.Comm, p.PID, p.Node)
}

// Step is one hop of a cause's path. Its JSON names are those of investigate.Step, so a
// stored path reads back as one.
type Step struct {
	Kind       string `json:"kind"` // span, tcp_wait, process, file, cpu, lock, page_faults
	Name       string `json:"name"`
	DurationNs int64  `json:"duration_ns,omitempty"`
	Process    *Proc  `json:"process,omitempty"`
	Detail     string `json:"detail,omitempty"`
}

// Cause is one ranked cause of a subject's latency.
type Cause struct {
	Key         string // stable within the subject: kind plus what it names
	Kind        string
	Rule        string // the rule that attributed most of its time
	ExplainedNs int64  // its time on the subject's critical path
	WhatIfNs    int64  // the subject's duration had this cause not happened
	Share       float64
	Confidence  float64
	Join        string
	Process     *Proc  // who held the resource (the peer, the preempting task, the lock holder)
	Resource    string // "tcp a -> b", "file dev 254:0 inode 12", "cpu 1", ...
	ResourceID  string // graph node ID of the resource, "" when none
	SpanID      string // the subject span where most of its time fell
	SpanName    string
	Summary     string
	Evidence    []uint64 // event IDs, the weightiest first
	Path        []Step

	resNode *Node // the resource's graph node
}

// RankCauses orders causes as every chain shows them: by the time they explain, largest
// first; ties (folded "small causes" of two kinds often explain the same few µs) by kind,
// then resource, then process, then key, so that a chain drawn into a graph and read
// back, and the same chain computed again on demand, rank alike.
func RankCauses(cs []Cause) {
	slices.SortFunc(cs, func(x, y Cause) int {
		return cmp.Or(cmp.Compare(y.ExplainedNs, x.ExplainedNs), cmp.Compare(x.Kind, y.Kind),
			cmp.Compare(x.Resource, y.Resource), cmp.Compare(x.Process.pid(), y.Process.pid()), cmp.Compare(x.Key, y.Key))
	})
}

// Result is the causal chain of one business object.
type Result struct {
	Object     Object
	StartNs    int64
	DurationNs int64
	Status     string // "error" when one of its spans failed
	TraceID    string
	Service    string
	Node       string
	PID, TID   uint32
	Comm       string
	Spans      []span.Span // its spans: those carrying its ID and their descendants (not read back from a graph)
	SpanCount  int         // how many spans it has
	Events     int         // kernel events joined to its spans
	Causes     []Cause     // by ExplainedNs, largest first; unexplained always among them
}
