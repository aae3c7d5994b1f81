package wire

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/engine"
	"github.com/kprobe/kprobe/pipeline/graphstore/embedded"
	"github.com/kprobe/kprobe/pipeline/graphstore/neo4j"
)

// The causal engine runs beside the event-log write: the engine's store is wrapped so
// that what the event log took is handed on (causal.Sink), and the causal engine draws
// each business object's chain into a graph store once its events are in.

// CausalFlags select the graph store and the business mapping.
type CausalFlags struct {
	Neo4jURI string
	Business string
	Off      bool
	Retain   time.Duration
}

// Register adds --neo4j, --business, --no-causal and --causal-retain.
func (f *CausalFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.Neo4jURI, "neo4j", cli.Env("NEO4J_URI", ""), "draw causal chains into this Neo4j (bolt://host:7687, bolt+s://...; user and password from KPROBE_NEO4J_USER, KPROBE_NEO4J_PASSWORD or _PASSWORD_FILE) instead of the embedded graph under --data")
	fs.StringVar(&f.Business, "business", cli.Env("BUSINESS", ""), "business mapping file (TOML): which spans are settlements, payments, ... (default: the built-in mapping)")
	fs.BoolVar(&f.Off, "no-causal", false, "do not draw causal chains as events arrive (kprobe-tui chain then computes them from the event log)")
	cli.DurationVar(fs, &f.Retain, "causal-retain", "CAUSAL_RETAIN", time.Minute, "event history the causal engine keeps: the longest business object it draws as it happens")
}

// mapping loads the business mapping (the default when no file is given).
func (f *CausalFlags) mapping() (causal.Mapping, error) { return causal.LoadMapping(f.Business) }

// causalRun is a running causal engine and its graph store.
type causalRun struct {
	eng   *causal.Engine
	store interface{ Close() error }
	where string
	done  chan error
	once  sync.Once
	err   error
}

// startCausal opens the graph store (Neo4j when given, else the embedded graph under
// data) and starts the engine; nil when turned off or when there is nowhere to draw.
func startCausal(ctx context.Context, log *slog.Logger, f CausalFlags, m causal.Mapping, data string, lateness time.Duration) (*causalRun, error) {
	if f.Off {
		return nil, nil
	}
	var w causal.Writer
	var closer interface{ Close() error }
	var where string
	switch {
	case f.Neo4jURI != "":
		opts := neo4j.EnvOptions(os.Getenv)
		opts.URI, opts.Logger = f.Neo4jURI, log
		st, err := neo4j.Open(ctx, opts)
		if err != nil {
			return nil, err
		}
		w, closer, where = st, st, "neo4j "+f.Neo4jURI
	case data != "":
		st, err := embedded.Open(ctx, embedded.Dir(data), embedded.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		w, closer, where = st, st, embedded.Dir(data)
	default:
		log.Info("no graph store (--neo4j or --data): causal chains are computed on demand")
		return nil, nil
	}
	eng, err := causal.NewEngine(causal.EngineOptions{Logger: log, Writer: w, Mapping: m, Lateness: lateness, Retain: f.Retain})
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("--causal-retain: %w", err)
	}
	r := &causalRun{eng: eng, store: closer, where: where, done: make(chan error, 1)}
	go func() { r.done <- eng.Run(context.WithoutCancel(ctx)) }()
	return r, nil
}

// graph is the graph store the engine draws into, to read chains back from (nil when
// none).
func (r *causalRun) graph() causal.Reader {
	if r == nil {
		return nil
	}
	g, _ := r.store.(causal.Reader)
	return g
}

// wrap hands what the event log takes on to the causal engine.
func (r *causalRun) wrap(store causal.Store) engine.Store {
	if r == nil {
		return store
	}
	return causal.Sink{Next: store, Engine: r.eng}
}

// stop draws what is pending, closes the graph store and prints the engine's counters
// (when stderr is given). Only the first call does anything.
func (r *causalRun) stop(stderr io.Writer) error {
	if r == nil {
		return nil
	}
	r.once.Do(func() {
		r.eng.Close()
		err := <-r.done
		s := r.eng.Stats()
		if stderr != nil {
			fmt.Fprintf(stderr, "causal: drawn=%d write_failed=%d too_long=%d redrawn=%d nodes=%d edges=%d graph: %s\n",
				s.Drawn, s.WriteFailed, s.TooLong, s.Redrawn, s.Nodes, s.Edges, r.where)
		}
		r.err = errors.Join(err, r.store.Close())
	})
	return r.err
}
