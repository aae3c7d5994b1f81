package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/replay/recording"
	"github.com/kprobe/kprobe/replay/sandbox"
	"github.com/kprobe/kprobe/replay/tweak"
)

// Query selects the recorded process: its pid on its node, over an optional window
// (From inclusive, To exclusive, ns since the epoch; 0 leaves a side open).
type Query struct {
	Node     string
	PID      uint32
	From, To int64
}

// Log is where the engine reads the recording: the event log's syscall events of one
// process. investigate.Service.SyscallLog meets it through a small adapter; tests pass
// events they build.
type Log interface {
	Syscalls(ctx context.Context, q Query) ([]event.Event, error)
}

// Events is a Log over events already in memory.
type Events []event.Event

// Syscalls returns the events as they are (the recording keeps only the query's pid).
func (e Events) Syscalls(context.Context, Query) ([]event.Event, error) { return e, nil }

// Policy is what a divergence does to the run.
type Policy uint8

const (
	// StopAtDivergence kills the program at the divergence (the default).
	StopAtDivergence Policy = iota
	// ContinueNatively lets the program run on natively, unserved, from the divergence
	// on: it may then reach the network and the files it opens.
	ContinueNatively
)

// ParsePolicy reads "stop" or "native".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "stop", "":
		return StopAtDivergence, nil
	case "native":
		return ContinueNatively, nil
	}
	return StopAtDivergence, fmt.Errorf("--on-divergence %q: want stop or native", s)
}

// Options configures a replay.
type Options struct {
	Log          Log
	Query        Query
	Tweaks       []string // tweak specs (package tweak's grammar)
	OnDivergence Policy
	// TraceBuffer is how many trace records wait for a slow reader before the newest are
	// dropped (and counted in Summary.TraceDropped); default 1<<20.
	TraceBuffer int
	Logger      *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Log == nil {
		return o, errors.New("replay: no Log to read the recording from")
	}
	if o.Query.PID == 0 {
		return o, errors.New("replay: no pid: say which recorded process to replay")
	}
	if o.TraceBuffer <= 0 {
		o.TraceBuffer = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Program is what to run in place of the recorded process.
type Program struct {
	Path string   // looked up in PATH when it has no slash
	Args []string // argv without argv[0] (Path is argv[0])
	Env  []string // nil: this process's environment
	Dir  string
	// Stdin feeds the program's reads of fd 0 that the recording does not serve.
	Stdin io.Reader
	// Stdout and Stderr receive the program's output unchanged; *os.File values are
	// handed to the program directly. nil discards.
	Stdout, Stderr io.Writer
}

// Run is one replay in progress.
type Run struct {
	e      *engine
	trace  *traceQueue
	done   chan struct{}
	sum    Summary
	err    error
	cancel context.CancelFunc
}

// Trace delivers every intercepted call as it is answered; it is closed when the run ends.
// Records arrive in batches (every 20 ms at most), never one wake-up per call.
func (r *Run) Trace() <-chan Record { return r.trace.out }

// Wait blocks until the program has ended and returns the summary.
func (r *Run) Wait() (Summary, error) {
	<-r.done
	return r.sum, r.err
}

// Stop kills the program; Wait then returns.
func (r *Run) Stop() { r.cancel() }

// Start reads the recording, parses the tweaks and starts the program under the sandbox.
// Errors before the program runs (no recording, a bad tweak, no such program) return
// here; everything after is in Wait's Summary.
func Start(ctx context.Context, opts Options, prog Program) (*Run, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	tw, err := tweak.Parse(opts.Tweaks)
	if err != nil {
		return nil, err
	}
	evs, err := opts.Log.Syscalls(ctx, opts.Query)
	if err != nil {
		return nil, fmt.Errorf("replay: reading the recording of pid %d: %w", opts.Query.PID, err)
	}
	rec, err := recording.Build(evs, opts.Query.PID)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	path, err := exec.LookPath(prog.Path)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	env := prog.Env
	if env == nil {
		env = os.Environ()
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &Run{trace: newTraceQueue(opts.TraceBuffer), done: make(chan struct{}), cancel: cancel}
	r.e = newEngine(opts, rec, tw, r.trace)
	ended := make(chan struct{})
	go r.trace.run(ended)

	stdio, closeStdio, err := pipes(prog)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("replay: %w", err)
	}
	notify, trace := r.e.syscalls()
	cfg := sandbox.Config{
		Path: path, Args: append([]string{prog.Path}, prog.Args...), Env: env, Dir: prog.Dir,
		Stdin: stdio[0], Stdout: stdio[1], Stderr: stdio[2],
		Notify: notify, Trace: trace, Logger: opts.Logger,
	}
	go func() {
		defer close(r.done)
		defer cancel()
		start := time.Now()
		exit, err := sandbox.Run(ctx, cfg, r.e)
		closeStdio()
		r.e.timers.Wait()
		r.sum = r.e.summary(exit, time.Since(start))
		if err != nil && r.e.stopped.Load() && errors.Is(err, context.Canceled) {
			err = nil // we killed it on purpose
		}
		r.err = err
		r.e.closePlaceholders()
		close(ended)
	}()
	return r, nil
}

// pipes gives the program files for its stdio: *os.File values as they are, other
// readers and writers through pipes copied until the program's ends close.
func pipes(p Program) (files [3]*os.File, closeAll func(), err error) {
	var toClose []*os.File
	var copies sync.WaitGroup
	closeAll = func() {
		for _, f := range toClose {
			f.Close()
		}
		copies.Wait()
	}
	if f, ok := p.Stdin.(*os.File); ok {
		files[0] = f
	} else if p.Stdin != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return files, closeAll, err
		}
		files[0] = r
		toClose = append(toClose, r)
		go func() { io.Copy(w, p.Stdin); w.Close() }()
	}
	for i, out := range []io.Writer{p.Stdout, p.Stderr} {
		if f, ok := out.(*os.File); ok {
			files[i+1] = f
			continue
		}
		if out == nil {
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return files, func() {}, err
		}
		files[i+1] = w
		toClose = append(toClose, w)
		copies.Add(1)
		go func() { defer copies.Done(); io.Copy(out, r); r.Close() }()
	}
	return files, closeAll, nil
}

// engine is the sandbox.Handler of one run: it decides, for every call the program
// makes, whether the recording answers it, the kernel runs it, or a tweak changes it.
type engine struct {
	opts  Options
	log   *slog.Logger
	rec   *recording.Recording
	tw    *tweak.Set
	trace *traceQueue

	mu    sync.Mutex // guards everything below up to the counters
	root  int
	tgids map[int]int
	fds   map[int]*fdEntry
	cur   cursors
	div   *Divergence
	phs   []*os.File
	stash map[int]*stash // tid → what a timeout edit must restore at syscall exit
	// holding is each thread's held call: answered later by a timer.
	holding map[int]*call
	// servedRes are the resources the program got from the recording.
	servedRes map[*recording.Resource]bool

	seq     atomic.Int64
	native  atomic.Bool // --on-divergence native, after the divergence
	stopped atomic.Bool // --on-divergence stop, after the divergence
	served  atomic.Int64
	nativeN atomic.Int64
	tweaked atomic.Int64
	timers  sync.WaitGroup
}

func newEngine(opts Options, rec *recording.Recording, tw *tweak.Set, trace *traceQueue) *engine {
	e := &engine{
		opts: opts, log: opts.Logger.With("component", "replay"), rec: rec, tw: tw, trace: trace,
		tgids: map[int]int{}, fds: map[int]*fdEntry{}, stash: map[int]*stash{}, holding: map[int]*call{}, servedRes: map[*recording.Resource]bool{},
	}
	e.cur.init(rec)
	// The program starts with the recorded process's stdin: its reads are served when
	// the recording has them. Stdout and stderr are the program's own: they pass
	// through uncompared (a timestamp or a timing in them would make every replay
	// diverge); what the program tells the world is compared on its sockets and files.
	if res, ok := rec.Inherited[0]; ok && len(res.Input) > 0 {
		e.fds[0] = &fdEntry{res: res, inherited: true}
		e.servedRes[res] = true
	}
	return e
}

func (e *engine) Started(pid int) {
	e.mu.Lock()
	e.root = pid
	e.tgids[pid] = pid
	e.mu.Unlock()
}

func (e *engine) Spawned(parent, child int, thread bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if thread {
		e.tgids[child] = e.tgids[parent]
	} else {
		e.tgids[child] = child
	}
}

func (e *engine) Exited(tid int, _ unix.WaitStatus) {
	e.mu.Lock()
	delete(e.stash, tid)
	e.mu.Unlock()
}

// isRoot reports whether tid is a thread of the replayed process (children run natively).
// e.mu must be held.
func (e *engine) isRoot(tid int) bool {
	g, ok := e.tgids[tid]
	if !ok {
		// A thread whose clone event the tracer has not handled yet.
		g = sandbox.Tgid(tid)
		e.tgids[tid] = g
	}
	return g == e.root && e.root != 0
}

func (e *engine) emit(r Record) { e.trace.push(r) }

func (e *engine) closePlaceholders() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, f := range e.phs {
		f.Close()
	}
	e.phs = nil
}

func (e *engine) summary(exit sandbox.Exit, d time.Duration) Summary {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Summary{
		ExitCode: exit.Code, Served: e.served.Load(), Native: e.nativeN.Load(), Tweaked: e.tweaked.Load(),
		Divergence: e.div, Stopped: e.stopped.Load(), Unconsumed: e.cur.unconsumed(e.rec, e.servedRes),
		UnmatchedTweaks: e.tw.Unmatched(), TraceDropped: e.trace.dropped.Load(), Duration: d,
	}
	if exit.Signal != 0 {
		s.Signal = unix.SignalName(exit.Signal)
	}
	return s
}
