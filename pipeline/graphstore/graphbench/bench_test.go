package graphbench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/graphstore/embedded"
	"github.com/kprobe/kprobe/pipeline/graphstore/neo4j"
)

const (
	// graphSubjects subjects make the chain benchmark's graph: 1 M edges.
	graphSubjects = 100_000
	// buildBatch subjects per Write while building it (10,500 nodes and edges).
	buildBatch = 500
	// writeBatch subjects per Write in BenchmarkGraphWrite: 21,000 nodes and edges, which
	// the baseline commits in 5k-row transactions.
	writeBatch = 1_000
	// The Neo4j graph outlives the run: a complete one (its marker node says so) is
	// reused, so `make bench` builds it once per server, not once per run.
	neo4jPrefix = "kprobe-bench-v1/"
	neo4jMarker = neo4jPrefix + "complete"
)

var tmpRoot string

func TestMain(m *testing.M) {
	var err error
	if tmpRoot, err = os.MkdirTemp("", "kprobe-graphbench-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	closeShared()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// reader is what the chain benchmarks query.
type reader interface {
	causal.Reader
	Close() error
}

// shared graphs, built once per process and queried by every benchmark.
var shared struct {
	embOnce, neoOnce sync.Once
	emb, neo         reader
	embErr, neoErr   error
	embHeapBytes     uint64
}

func closeShared() {
	for _, r := range []reader{shared.emb, shared.neo} {
		if r != nil {
			r.Close()
		}
	}
}

func embeddedDir() string { return embedded.Dir(tmpRoot + "/data") }

// embeddedGraph builds the 1 M-edge graph in an embedded store, closes it (so its log is
// on disk) and opens it read-only for the benchmarks.
func embeddedGraph(b *testing.B) reader {
	b.Helper()
	shared.embOnce.Do(func() {
		ctx := context.Background()
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		t0 := time.Now()
		s, err := embedded.Open(ctx, embeddedDir(), embedded.Options{})
		if err != nil {
			shared.embErr = err
			return
		}
		for i := 0; i < graphSubjects && err == nil; i += buildBatch {
			err = s.Write(ctx, Batch("", i, buildBatch))
		}
		if err == nil {
			err = s.Close()
		}
		if err != nil {
			shared.embErr = err
			return
		}
		built := time.Since(t0)
		t0 = time.Now()
		shared.emb, shared.embErr = embedded.Open(ctx, embeddedDir(), embedded.Options{ReadOnly: true})
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		shared.embHeapBytes = after.HeapAlloc - before.HeapAlloc
		fmt.Fprintf(os.Stderr, "graphbench: embedded graph of %d edges built in %v, reopened in %v, %d MiB of heap\n",
			graphSubjects*EdgesPerSubject, built.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), shared.embHeapBytes>>20)
	})
	if shared.embErr != nil {
		b.Fatalf("building the embedded graph: %v", shared.embErr)
	}
	return shared.emb
}

func neo4jOptions(b *testing.B) neo4j.Options {
	b.Helper()
	o := neo4j.EnvOptions(os.Getenv)
	if o.URI == "" {
		b.Skip(neo4j.EnvURI + " unset: run through `make bench`, which starts Neo4j")
	}
	return o
}

// neo4jGraph opens the server's 1 M-edge benchmark graph, building it when no complete
// one is there.
func neo4jGraph(b *testing.B) reader {
	b.Helper()
	opts := neo4jOptions(b)
	shared.neoOnce.Do(func() {
		ctx := context.Background()
		s, err := neo4j.Open(ctx, opts)
		if err != nil {
			shared.neoErr = err
			return
		}
		shared.neo = s
		if _, err := s.Subgraph(ctx, neo4jMarker, 0); err == nil {
			return
		} else if !errors.Is(err, causal.ErrNotFound) {
			shared.neoErr = err
			return
		}
		fmt.Fprintf(os.Stderr, "graphbench: building the Neo4j benchmark graph (%d edges, once per server)\n", graphSubjects*EdgesPerSubject)
		if err := s.Delete(ctx, neo4jPrefix); err != nil { // a build cut short before
			shared.neoErr = err
			return
		}
		t0 := time.Now()
		for i := 0; i < graphSubjects; i += buildBatch {
			if err := s.Write(ctx, Batch(neo4jPrefix, i, buildBatch)); err != nil {
				shared.neoErr = err
				return
			}
		}
		shared.neoErr = s.Write(ctx, causal.Graph{Nodes: []causal.Node{{ID: neo4jMarker, Label: "BenchMarker"}}})
		d := time.Since(t0)
		items := graphSubjects * (NodesPerSubject + EdgesPerSubject)
		fmt.Fprintf(os.Stderr, "graphbench: Neo4j graph built in %v (%.0f nodes+edges/s)\n", d.Round(time.Second), float64(items)/d.Seconds())
	})
	if shared.neoErr != nil {
		b.Fatalf("the Neo4j benchmark graph: %v", shared.neoErr)
	}
	return shared.neo
}

type store struct {
	name   string
	prefix string
	open   func(*testing.B) reader
}

var stores = []store{
	{"embedded", "", embeddedGraph},
	{"neo4j", neo4jPrefix, neo4jGraph},
}

// BenchmarkChainQuery: the ranked causes of a random settlement of a 1 M-edge graph, as
// `kprobe-tui chain` asks them (goal: p95 ≤ 20 ms on both stores).
func BenchmarkChainQuery(b *testing.B) {
	benchQuery(b, 1, func(ctx context.Context, s reader, root string) error {
		paths, err := s.Causes(ctx, root, 10)
		if err == nil && len(paths) != 4 {
			err = fmt.Errorf("%d paths, want 4", len(paths))
		}
		return err
	})
}

// BenchmarkSubgraph: the whole chain of a random settlement, for display.
func BenchmarkSubgraph(b *testing.B) {
	benchQuery(b, 2, func(ctx context.Context, s reader, root string) error {
		g, err := s.Subgraph(ctx, root, 4)
		if err == nil && len(g.Edges) != EdgesPerSubject {
			err = fmt.Errorf("%d edges, want %d", len(g.Edges), EdgesPerSubject)
		}
		return err
	})
}

// benchQuery runs query on random settlements of each store's 1 M-edge graph and reports
// its latency percentiles.
func benchQuery(b *testing.B, seed uint64, query func(context.Context, reader, string) error) {
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			s := st.open(b)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(seed, 2))
			var lat []time.Duration
			b.ReportAllocs()
			for b.Loop() {
				root := Root(st.prefix, rng.IntN(graphSubjects))
				t0 := time.Now()
				err := query(ctx, s, root)
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatalf("%s: %v", root, err)
				}
			}
			reportLatency(b, lat)
			if st.name == "embedded" {
				b.ReportMetric(float64(shared.embHeapBytes)/float64(graphSubjects*(NodesPerSubject+EdgesPerSubject)), "heap-B/item")
			}
		})
	}
}

// BenchmarkEmbeddedOpen: replaying the 1 M-edge graph's log at open.
func BenchmarkEmbeddedOpen(b *testing.B) {
	embeddedGraph(b)
	b.ReportAllocs()
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		s, err := embedded.Open(context.Background(), embeddedDir(), embedded.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
		n++
	}
	// CPU time says more than wall time on a shared machine (the collector's work on
	// the other core included).
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n)/1e9, "cpu-s/op")
}

// cpuTime is the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportLatency(b *testing.B, lat []time.Duration) {
	b.Helper()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.95), "p95-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
