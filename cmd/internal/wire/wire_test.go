package wire

import (
	"bytes"
	"context"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/cmd/internal/apiflag"
	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/pipeline/recorder"
)

func TestSourceErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  Source
		want string
	}{
		{"nothing", Source{}, "no data given: use --data DIR (the embedded default), --clickhouse ADDR or --api HOST:PORT"},
		{"data and clickhouse", Source{Data: "x", ClickHouse: "y:1"}, "give either --data or --clickhouse, not both"},
		{"clickhouse and api", Source{ClickHouse: "y:1", API: apiflag.Client{Addr: "z:1"}}, "give either --clickhouse or --api, not both"},
		{"all three", Source{Data: "x", ClickHouse: "y:1", API: apiflag.Client{Addr: "z:1"}}, "give one of --data, --clickhouse, --api"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.src.Open(context.Background()); err == nil || err.Error() != tc.want {
				t.Errorf("Open: err = %v, want %q", err, tc.want)
			}
		})
	}
	// --data that holds no event log says how to record one.
	missing := t.TempDir()
	_, err := (&Source{Data: missing}).Open(context.Background())
	if want := "no event log under " + missing + ": record one with 'kprobe-agent standalone --data " + missing + "'"; err == nil || err.Error() != want {
		t.Errorf("Open on an empty --data: err = %v, want %q", err, want)
	}
}

func TestSourceFlags(t *testing.T) {
	t.Setenv("KPROBE_DATA", "")
	t.Setenv("KPROBE_CLICKHOUSE_ADDR", "ch:9000")
	var s Source
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	s.Register(fs)
	if err := fs.Parse([]string{"--api", "unix:/run/k.sock"}); err != nil {
		t.Fatal(err)
	}
	if s.ClickHouse != "ch:9000" || s.API.Addr != "unix:/run/k.sock" {
		t.Errorf("flags and environment: %+v", s)
	}
	if got := s.Flags(); got != "--api unix:/run/k.sock" {
		t.Errorf("Flags() = %q", got)
	}
}

// TestSourceNeo4j: the environment's Neo4j is the cluster's, read beside --clickhouse;
// a --data recording reads its own graph (or its events) unless --neo4j is given.
func TestSourceNeo4j(t *testing.T) {
	t.Setenv("KPROBE_NEO4J_URI", "bolt://cluster:7687")
	t.Setenv("KPROBE_CLICKHOUSE_ADDR", "")
	t.Setenv("KPROBE_DATA", "")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"data", []string{"--data", "d"}, ""},
		{"data and --neo4j", []string{"--data", "d", "--neo4j", "bolt://mine:7687"}, "bolt://mine:7687"},
		{"clickhouse", []string{"--clickhouse", "ch:9000"}, "bolt://cluster:7687"},
		{"clickhouse and --neo4j", []string{"--clickhouse", "ch:9000", "--neo4j", "bolt://other:7687"}, "bolt://other:7687"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Source
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			s.RegisterStores(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, s.Neo4jURI()); diff != "" {
				t.Errorf("Neo4jURI (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEngineFlagsCheck(t *testing.T) {
	for _, tc := range []struct {
		shape Shape
		args  []string
		want  string
	}{
		{Standalone, nil, "--data DIR is required (where the embedded event log is kept)"},
		{Standalone, []string{"--data", "d"}, ""},
		{Cluster, nil, "give exactly one of --clickhouse ADDR or --data DIR for the event log"},
		{Cluster, []string{"--data", "d", "--clickhouse", "c:1"}, "give exactly one of --clickhouse ADDR or --data DIR for the event log"},
		{Cluster, []string{"--clickhouse", "c:1"}, ""},
	} {
		t.Setenv("KPROBE_DATA", "")
		t.Setenv("KPROBE_CLICKHOUSE_ADDR", "")
		var f EngineFlags
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		f.Register(fs, tc.shape)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		err := f.Check()
		if got := ""; err != nil {
			got = err.Error()
			if got != tc.want {
				t.Errorf("%v %q: %q, want %q", tc.shape, tc.args, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("%v %q: no error, want %q", tc.shape, tc.args, tc.want)
		}
	}
	if fs := flag.NewFlagSet("x", flag.ContinueOnError); true {
		var f EngineFlags
		f.Register(fs, Standalone)
		if fs.Lookup("clickhouse") != nil {
			t.Error("standalone takes --clickhouse")
		}
	}
}

// TestEngineEndToEnd: what StartEngine puts together stores what the bus carries, and
// Source reads it back through the use cases once the engine is closed.
func TestEngineEndToEnd(t *testing.T) {
	if _, err := os.Stat(eventlog.LibraryPath()); err != nil {
		t.Skipf("embedded ClickHouse engine not found at %s: run scripts/chdb/fetch.sh", eventlog.LibraryPath())
	}
	ctx := context.Background()
	data := t.TempDir()
	var f EngineFlags
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	f.Register(fs, Standalone)
	if err := fs.Parse([]string{"--data", data, "--otlp-grpc", "", "--otlp-http", "", "--lateness", "10ms", "--api", ""}); err != nil {
		t.Fatal(err)
	}
	mem := bus.NewMemory(64)
	eng, err := StartEngine(ctx, f, EngineOptions{Source: mem, Node: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	now := time.Now().UnixNano()
	var evs []event.Event
	for i := range 5 {
		evs = append(evs, event.Event{ID: uint64(i + 1), TsNs: now + int64(i), Node: "node-a", PID: 42, TID: 42,
			Comm: "svc", Type: event.TypeWrite, Syscall: "write", FD: 1, Bytes: 8})
	}
	if err := recorder.NewPublish(mem, 16, "").Write(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// While the engine holds the directory, a reader of --data comes through the API
	// socket the engine serves inside it.
	for deadline := time.Now().Add(60 * time.Second); eng.Stats().Written < uint64(len(evs)); {
		if time.Now().After(deadline) {
			t.Fatalf("the engine wrote %d events of %d", eng.Stats().Written, len(evs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	live, err := (&Source{Data: data}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := live.Events(ctx, investigate.EventQuery{Node: "node-a", PID: 42})
	live.Close()
	if err != nil || len(got) != len(evs) {
		t.Fatalf("reading through the engine's socket: %d events, %v", len(got), err)
	}
	mem.Close()
	if err := <-done; err != nil {
		t.Fatalf("engine: %v", err)
	}
	var summary bytes.Buffer
	if err := eng.StopCausal(&summary); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(summary.String(), "causal: ") {
		t.Errorf("causal summary = %q", summary.String())
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if got := f.EventLog(); got != eventlog.EmbeddedDir(data) {
		t.Errorf("EventLog() = %q", got)
	}

	svc, err := (&Source{Data: data}).Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	got, err = svc.Events(ctx, investigate.EventQuery{Node: "node-a", PID: 42})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if diff := cmp.Diff([]uint64{1, 2, 3, 4, 5}, ids); diff != "" {
		t.Errorf("stored events (-want +got):\n%s", diff)
	}
}
