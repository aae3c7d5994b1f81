package wire

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/kprobe/kprobe/api/live"
	"github.com/kprobe/kprobe/cmd/internal/apiflag"
	"github.com/kprobe/kprobe/cmd/internal/chflag"
	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/correlate"
	"github.com/kprobe/kprobe/pipeline/engine"
	"github.com/kprobe/kprobe/pipeline/eventlog"
)

// Shape is how an engine runs: in one process with the recorder on the embedded stores,
// or in a cluster behind Kafka.
type Shape int

const (
	Standalone Shape = iota // record + engine, embedded stores under --data
	Cluster                 // engine alone; the event log embedded or on a ClickHouse server
)

// EngineFlags are the flags of an engine's side, the same for both shapes: where the
// stores are, how late data may arrive, the OTLP receiver and the causal engine.
type EngineFlags struct {
	Data          string
	ClickHouse    string       // Cluster only
	CH            chflag.Flags // --clickhouse's TLS and credentials
	RetentionDays int
	Lateness      time.Duration
	DrainTimeout  time.Duration // how long a stop may spend writing what is held
	// MemoryLimitMiB is the soft limit of the Go heap (0: none; GOMEMLIMIT wins).
	MemoryLimitMiB int
	OTLP           OTLPFlags
	Causal         CausalFlags
	// API is where the use cases over these stores are served besides the socket inside
	// --data (which is always served: readers of --data come through it).
	API   apiflag.Server
	shape Shape
}

// Register adds the flags of shape to fs.
func (f *EngineFlags) Register(fs *flag.FlagSet, shape Shape) {
	f.shape = shape
	if shape == Standalone {
		fs.StringVar(&f.Data, "data", cli.Env("DATA", ""), "directory of the embedded stores (required)")
	} else {
		fs.StringVar(&f.ClickHouse, "clickhouse", cli.Env("CLICKHOUSE_ADDR", ""), "ClickHouse server host:port for the event log")
		fs.StringVar(&f.Data, "data", cli.Env("DATA", ""), "use the embedded event log under this directory instead of --clickhouse")
		f.CH.Register(fs)
	}
	f.OTLP.Register(fs)
	f.Causal.Register(fs)
	f.API.Register(fs, "")
	cli.DurationVar(fs, &f.Lateness, "lateness", "LATENESS", 2*time.Second, "how late a span or event may arrive and still be joined")
	fs.IntVar(&f.RetentionDays, "retention-days", 0, "drop events older than this many days (0: keep)")
	fs.DurationVar(&f.DrainTimeout, "drain-timeout", 30*time.Second, "at a stop, how long to keep trying to write what is held to a failing event log (down, or its disk full) before giving up")
	fs.IntVar(&f.MemoryLimitMiB, "memory-limit-mib", DefaultMemoryLimitMiB, "soft limit of this process's Go memory in MiB: near it the garbage collector runs more often instead of letting the heap double (0: none; GOMEMLIMIT, when set, takes precedence). The embedded engine and its mapped library come on top")
	if shape == Standalone {
		fs.Lookup("data").Usage += fmt.Sprintf("; keep at least %d MiB free there (the embedded engine reserves room for each batch and merge before it writes)", eventlog.MinFreeMiB)
	}
}

// Check says what is missing or contradictory, in one line.
func (f *EngineFlags) Check() error {
	switch {
	case f.shape == Standalone && f.Data == "":
		return fmt.Errorf("--data DIR is required (where the embedded event log is kept)")
	case f.shape == Cluster && (f.ClickHouse == "") == (f.Data == ""):
		return fmt.Errorf("give exactly one of --clickhouse ADDR or --data DIR for the event log")
	case f.Lateness < 0:
		return fmt.Errorf("--lateness %v: must not be negative", f.Lateness)
	case f.MemoryLimitMiB < 0:
		return fmt.Errorf("--memory-limit-mib %d: want 0 (none) or more", f.MemoryLimitMiB)
	case f.RetentionDays < 0:
		return fmt.Errorf("--retention-days %d: want 0 (keep) or more", f.RetentionDays)
	case f.Causal.Retain <= 0:
		return fmt.Errorf("--causal-retain %v: must be positive", f.Causal.Retain)
	}
	return nil
}

// DefaultMemoryLimitMiB is the default --memory-limit-mib. What an engine keeps live is
// bounded (the correlator's window of at most 2^18 events, the causal engine's history,
// the held batch, the in-process bus's 64 MiB): ~300 MiB on a busy recording with its
// disk full. Without a limit the garbage collector lets the heap reach twice that.
const DefaultMemoryLimitMiB = 512

// limitMemory sets the Go runtime's soft memory limit, unless GOMEMLIMIT set one.
func (f *EngineFlags) limitMemory(log *slog.Logger) {
	if f.MemoryLimitMiB == 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(int64(f.MemoryLimitMiB) << 20)
	log.Debug("go memory limit", "mib", f.MemoryLimitMiB)
}

// EventLog is where the event log is, as the summary names it.
func (f *EngineFlags) EventLog() string {
	if f.ClickHouse != "" {
		return "clickhouse " + f.ClickHouse
	}
	return eventlog.EmbeddedDir(f.Data)
}

// EngineOptions is what an engine runs on besides its flags.
type EngineOptions struct {
	Logger *slog.Logger
	Source bus.Source    // the in-process bus, or Kafka
	Out    bus.Publisher // kernel.enriched and dead letters (Kafka); nil for none
	// SpansTopic and TopicPrefix are the engine's topics on Kafka.
	SpansTopic, TopicPrefix string
	// Node names this node, for spans sent from it without host.name.
	Node string
}

// Engine is an engine put together with its stores, its span receiver and its API: the
// event log, the causal engine drawing into the graph store (beside the event-log write),
// the OTLP receiver feeding spans in, and the use cases over those stores served on the
// socket inside --data and on --api, with what the engine writes as their live feed. Run
// it with Engine.Run; stop the parts in the order the command reports them, then Close.
type Engine struct {
	*engine.Engine
	Log *eventlog.Log

	causal   *causalRun
	haltOTLP func()
	stopOTLP func(io.Writer)
	api      *apiServing
}

// StartEngine opens the stores, builds the engine and starts the OTLP receiver (which
// then outlives ctx until StopOTLP, so spans sent while the engine drains still arrive).
func StartEngine(ctx context.Context, f EngineFlags, o EngineOptions) (_ *Engine, err error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f.limitMemory(log)
	e := &Engine{}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if f.Data != "" {
		if err := PrivateData(f.Data); err != nil {
			return nil, err
		}
	}
	lo := eventlog.Options{Logger: log, RetentionDays: f.RetentionDays}
	if f.ClickHouse != "" {
		if lo.Server, err = f.CH.Auth(); err != nil {
			return nil, err
		}
		e.Log, err = eventlog.OpenServer(ctx, f.ClickHouse, lo)
	} else if err = waitForReaders(ctx, log, f.Data, time.Minute); err == nil {
		e.Log, err = eventlog.OpenEmbedded(ctx, eventlog.EmbeddedDir(f.Data), lo)
	}
	if err != nil {
		return nil, err
	}
	mapping, err := f.Causal.mapping()
	if err != nil {
		return nil, err
	}
	if e.causal, err = startCausal(ctx, log, f.Causal, mapping, f.Data, f.Lateness); err != nil {
		return nil, err
	}
	// Everything the engine writes is also offered to live API subscribers.
	hub := live.NewHub()
	e.Engine, err = engine.New(engine.Options{Logger: log, Source: o.Source, Store: live.Tap{W: e.causal.wrap(e.Log), Hub: hub}, Out: o.Out,
		SpansTopic: o.SpansTopic, TopicPrefix: o.TopicPrefix, DrainTimeout: f.DrainTimeout,
		Correlate: correlate.Options{Lateness: f.Lateness, BusinessPrefixes: mapping.Prefixes()}})
	if err != nil {
		return nil, err
	}
	ropts, err := f.OTLP.options(log, o.Node)
	if err != nil {
		return nil, err
	}
	ropts.Business = e.Business() // the engine's resolved prefixes: one source for both ways in
	if e.haltOTLP, e.stopOTLP, err = serveOTLP(ctx, ropts, e.AddSpans); err != nil {
		return nil, err
	}
	svc, err := servedService(log, e.Log, e.causal.graph(), mapping)
	if err != nil {
		return nil, err
	}
	if e.api, err = startAPI(ctx, log, f.API, f.Data, svc, hub, mapping); err != nil {
		return nil, err
	}
	return e, nil
}

// APISummary prints where the API was served, for the command's exit summary.
func (e *Engine) APISummary(w io.Writer) { e.api.summary(w) }

// HaltOTLP stops the span receiver taking spans and returns once every export in flight
// (a recorded command's last, sent as it exits) is in the engine: closing the engine's
// input after it loses none. The summary line waits for StopOTLP.
func (e *Engine) HaltOTLP() {
	if e.haltOTLP != nil {
		e.haltOTLP()
	}
}

// StopOTLP stops the span receiver and prints its summary line to w (when not nil).
func (e *Engine) StopOTLP(w io.Writer) {
	if e.stopOTLP != nil {
		e.stopOTLP(w)
		e.stopOTLP = nil
	}
}

// StopCausal draws what is pending, closes the graph store and prints the causal
// engine's summary line to w (when not nil).
func (e *Engine) StopCausal(w io.Writer) error { return e.causal.stop(w) }

// Close stops what is still running, silently, and closes the event log.
func (e *Engine) Close() error {
	e.api.stop()
	e.api = nil
	e.StopOTLP(nil)
	err := e.StopCausal(nil)
	if e.Log != nil {
		err = errors.Join(err, e.Log.Close())
	}
	return err
}
