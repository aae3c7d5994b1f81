package replay

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Kind says how the replay handled one call.
type Kind uint8

const (
	// Served: answered from the recording; the kernel never ran it.
	Served Kind = iota + 1
	// Native: run by the kernel as the program asked.
	Native
	// Tweaked: a tweak changed it (delay, injected result, timeout).
	Tweaked
	// Divergent: the program did something the recording does not have next.
	Divergent
)

var kindNames = [...]string{Served: "served", Native: "native", Tweaked: "tweaked", Divergent: "divergent"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MarshalText makes Kind a string in JSON.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Record is one intercepted call of the program, as the trace pane and --trace show it.
type Record struct {
	Seq     int64  `json:"seq"` // 1-based, in the order the replay intercepted calls
	TID     int    `json:"tid"`
	Syscall string `json:"syscall"`
	FD      int64  `json:"fd"`   // -1 when the call has no fd
	Kind    Kind   `json:"kind"` // served, native, tweaked, divergent
	// Result is what the program got (-errno on failure), when the replay decided it;
	// native calls report 0 (the kernel's result is not seen).
	Result int64  `json:"result"`
	Errno  string `json:"errno,omitempty"`
	// LogIndex is the recorded call it was matched to (1-based), 0 for none.
	LogIndex int    `json:"log_index,omitempty"`
	Resource string `json:"resource,omitempty"` // the file or socket served
	Tweak    string `json:"tweak,omitempty"`    // the spec that applied
	Detail   string `json:"detail,omitempty"`   // what diverged, what was injected
	// DelayNs is how long the replay held the call (recorded timing and tweaks).
	DelayNs    int64 `json:"delay_ns,omitempty"`
	RecordedNs int64 `json:"recorded_ns,omitempty"` // its duration in production
	TimeNs     int64 `json:"time_ns"`               // when it was intercepted (Unix ns)
}

// Divergence is where the program stopped following the recording.
type Divergence struct {
	Seq      int64  `json:"seq"`
	TID      int    `json:"tid"`
	LogIndex int    `json:"log_index,omitempty"`
	Recorded string `json:"recorded"` // what the recording has there
	Program  string `json:"program"`  // what the program did
}

// String is the line the command prints (after "replay: ").
func (d Divergence) String() string {
	return fmt.Sprintf("divergence at syscall #%d (tid %d): recorded %s, program %s", d.Seq, d.TID, d.Recorded, d.Program)
}

// Summary is the end of a run.
type Summary struct {
	ExitCode   int         `json:"exit_code"`        // the program's status, 128+signal when killed
	Signal     string      `json:"signal,omitempty"` // the signal that killed it
	Served     int64       `json:"served"`
	Native     int64       `json:"native"`
	Tweaked    int64       `json:"tweaked"`
	Divergence *Divergence `json:"divergence,omitempty"`
	// Stopped says the replay killed the program at the divergence (--on-divergence stop).
	Stopped bool `json:"stopped"`
	// Unconsumed counts recorded inputs (reads, accepts, connects) the program never
	// asked for: it ended earlier than in production.
	Unconsumed int `json:"unconsumed"`
	// UnmatchedTweaks are specs that selected no call.
	UnmatchedTweaks []string      `json:"unmatched_tweaks,omitempty"`
	TraceDropped    int64         `json:"trace_dropped,omitempty"`
	Duration        time.Duration `json:"duration_ns"`
}

// traceQueue carries records from the supervisor to the reader without waking the reader
// for each one: a wake-up per served call (a futex and a cross-CPU interrupt on a busy
// machine) would cost more than serving the call. Records wait in a slice and move to
// the channel every flushEvery, or sooner when flushAt are waiting. Beyond max waiting
// (a reader that does not keep up) the newest are dropped and counted.
type traceQueue struct {
	mu      sync.Mutex
	pending []Record
	max     int
	dropped atomic.Int64
	kick    chan struct{}
	out     chan Record
}

const (
	traceFlushEvery = 20 * time.Millisecond
	traceFlushAt    = 1024
)

func newTraceQueue(max int) *traceQueue {
	return &traceQueue{max: max, kick: make(chan struct{}, 1), out: make(chan Record, traceFlushAt)}
}

func (q *traceQueue) push(r Record) {
	q.mu.Lock()
	if len(q.pending) >= q.max {
		q.mu.Unlock()
		q.dropped.Add(1)
		return
	}
	q.pending = append(q.pending, r)
	n := len(q.pending)
	q.mu.Unlock()
	if n == traceFlushAt {
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
}

// run moves records to the channel until done is closed, then flushes and closes it.
func (q *traceQueue) run(done <-chan struct{}) {
	t := time.NewTicker(traceFlushEvery)
	defer t.Stop()
	var batch []Record
	flush := func() {
		q.mu.Lock()
		batch, q.pending = q.pending, batch[:0]
		q.mu.Unlock()
		for _, r := range batch {
			q.out <- r
		}
	}
	for {
		select {
		case <-t.C:
		case <-q.kick:
		case <-done:
			flush()
			close(q.out)
			return
		}
		flush()
	}
}
