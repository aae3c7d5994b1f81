package investigate

import (
	"context"
	"errors"

	"github.com/kprobe/kprobe/pipeline/event"
)

// This file is the contract between the use cases and their callers (kprobe-tui's
// subcommands, the workstation in ui/, the API in api/). Its JSON names are the ones
// `kprobe-tui chain --format json` prints and the API mirrors; units are in the names.

// Business kinds understood by default; a firm adds its own by configuration.
const (
	KindSettlement     = "settlement"
	KindPayment        = "payment"
	KindClearingWindow = "clearing_window"
	KindOrderBookOp    = "order_book_op"
)

// Cause kinds: what a causal rule found.
const (
	CauseCPUContention  = "cpu_contention"
	CauseSlowPeer       = "slow_peer"
	CauseStorage        = "storage"
	CauseMemory         = "memory"
	CauseLockContention = "lock_contention"
	CauseUnexplained    = "unexplained"
)

// Ref names one business object: by kind and ID (settlement 4821, payment PAY-98721), or
// by trace ID alone.
type Ref struct {
	Kind    string `json:"kind,omitempty"`
	ID      string `json:"id,omitempty"`
	TraceID string `json:"trace_id,omitempty"`
}

// Process names one process on one node.
type Process struct {
	Node string `json:"node"`
	PID  uint32 `json:"pid"`
	Comm string `json:"comm"`
}

// Subject is one business object as its spans show it.
type Subject struct {
	Kind       string `json:"kind"`
	ID         string `json:"id"`
	StartNs    int64  `json:"start_ns"`
	DurationNs int64  `json:"duration_ns"`
	Status     string `json:"status,omitempty"` // "", "ok" or "error"
	TraceID    string `json:"trace_id"`
	Service    string `json:"service"`
	Node       string `json:"node"`
	PID        uint32 `json:"pid"`
	Comm       string `json:"comm"`
	Spans      int    `json:"spans"`
	// Events is how many kernel events were joined to the subject's spans;
	// EventsUncounted when the query asked for none (SubjectQuery.Uncounted).
	Events int `json:"events"`
}

// EventsUncounted is Subject.Events when its events were not counted.
const EventsUncounted = -1

// SubjectQuery selects business objects by start time (From inclusive, To exclusive;
// 0 leaves a side open), slowest first.
type SubjectQuery struct {
	Kind       string // default KindSettlement
	From, To   int64
	Limit      int  // default 20
	FailedOnly bool // only those whose spans ended in error
	// Uncounted leaves the subjects' events uncounted (Events is EventsUncounted, Comm
	// empty): counting them scans the log, so a screen shows the list first and counts
	// after. A service may count them all the same.
	Uncounted bool
}

// Step is one hop of a cause's path, from the subject down to the root cause.
type Step struct {
	Kind       string   `json:"kind"` // span, tcp_wait, file, cpu, process, ...
	Name       string   `json:"name"`
	DurationNs int64    `json:"duration_ns,omitempty"`
	Process    *Process `json:"process,omitempty"`
	Detail     string   `json:"detail,omitempty"`
}

// Cause is one ranked cause in a causal chain.
type Cause struct {
	Rank        int     `json:"rank"`
	Kind        string  `json:"kind"` // one of the Cause* constants
	ExplainedNs int64   `json:"explained_ns"`
	Share       float64 `json:"share"`          // ExplainedNs / the subject's duration
	Confidence  float64 `json:"confidence"`     // 0..1: how the join behind it was made
	Join        string  `json:"join,omitempty"` // tid, pid, 4-tuple, time-overlap
	Rule        string  `json:"rule"`
	// WhatIfNs is the subject's duration had this cause not happened (ExplainedNs taken
	// off the critical path).
	WhatIfNs int64    `json:"what_if_ns"`
	Process  *Process `json:"process,omitempty"`  // who held the resource
	Resource string   `json:"resource,omitempty"` // file, socket, cpu, lock
	Summary  string   `json:"summary"`            // one sentence an SRE can paste
	Evidence []string `json:"evidence"`           // event IDs (decimal)
	Path     []Step   `json:"path"`
}

// Chain is the causal chain of one subject, causes ordered by ExplainedNs.
type Chain struct {
	Subject Subject `json:"subject"`
	Causes  []Cause `json:"causes"`
}

// EventQuery selects kernel events (zero fields match anything), ordered by time.
type EventQuery struct {
	Ref      Ref // events joined to this subject's spans
	Node     string
	PID, TID uint32
	SpanID   string
	From, To int64
	Types    []event.Type
	IDs      []uint64 // exactly these events (a cause's evidence)
	Limit    int
}

// SyscallLogQuery selects what replay needs: one process's recorded syscalls.
type SyscallLogQuery struct {
	Node     string
	PID      uint32
	From, To int64
}

// ErrNotFound is returned (wrapped, naming what was asked) for an ID the stores do not
// know: callers turn it into exit 1, codes.NotFound, or "no such settlement" on screen.
var ErrNotFound = errors.New("not found")

// ErrInvalid is returned (wrapped, naming the problem) for a question that cannot be asked
// as put (an unknown kind, an empty ID, a window that ends before it starts): callers turn
// it into a usage error or codes.InvalidArgument, never an internal error.
var ErrInvalid = errors.New("invalid query")

// Service answers the questions; implemented over the stores (embedded or cluster) and
// over the API, so every caller works against any of them.
type Service interface {
	Subjects(ctx context.Context, q SubjectQuery) ([]Subject, error)
	Chain(ctx context.Context, ref Ref) (Chain, error)
	Events(ctx context.Context, q EventQuery) ([]event.Event, error)
	SyscallLog(ctx context.Context, q SyscallLogQuery) ([]event.Event, error)
	Close() error
}
