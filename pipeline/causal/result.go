package causal

import (
	"fmt"

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
const (
	RulePreempted      = "cpu_contention/preempted: runnable but switched out for another task (sched_switch preempted, next_*)"
	RuleRunQueue       = "cpu_contention/run-queue: woken but waiting for a CPU (sched_switch runq_delay_ns)"
	RuleFileSyscall    = "storage/in-syscall: inside read/write on a file (dev, inode), on or off CPU"
	RuleAfterFileWrite = "storage/after-file-io: blocked right after file I/O, woken by no recorded thread (fsync is not traced)"
	RulePeerWait       = "slow_peer/tcp-hops: blocked until a reply on a TCP connection; peers matched by 4-tuple and time, hop by hop"
	RuleFaultRun       = "memory/fault-run: on CPU between page faults that follow each other closely"
	RuleBlockedInFault = "memory/blocked-in-fault: blocked right after a page fault, in no syscall"
	RuleWaker          = "lock_contention/waker: blocked until another recorded thread woke it (sched_switch waker_*)"
	RuleInferredWaker  = "lock_contention/running-at-wake: blocked until woken while one recorded process alone was running (waker not reported)"
	RuleRemainder      = "unexplained/remainder: on CPU in the service's own code, or blocked with no recorded cause"
)

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
	Spans      []span.Span // its spans: those carrying its ID and their descendants
	Events     int         // kernel events joined to its spans
	Causes     []Cause     // by ExplainedNs, largest first; unexplained always among them
}
