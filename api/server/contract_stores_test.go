package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"

	"github.com/kprobe/kprobe/api/live"
	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/dataset"
	"github.com/kprobe/kprobe/pipeline/engine"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/graphstore/embedded"
	"github.com/kprobe/kprobe/pipeline/graphstore/neo4j"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// The stores the contract suite (contract_test.go) runs the server over, filled with the
// incident that ships for `make demo` through the write path a recording takes.

// demoIncident is a real recording: settlements 4815–4826 of kprobe-demo, slow storage
// injected into 4821, flight-recorder syscalls included.
const demoIncident = "../../testdata/demo/incident-slow-storage.kpds"

// The recording's own names the suite asks about.
const (
	incidentSettlement = "4821"
	// failedSettlement is marked failed before the write: the recording has no failed
	// settlement, and ListSettlements' failed_only must have one to find.
	failedSettlement = "4824"
)

// graphStore is a graph store as the causal engine writes it and the use cases read it.
type graphStore interface {
	causal.Writer
	causal.Reader
	Close() error
}

// needEngine skips where the embedded ClickHouse engine is missing (never in make test,
// which fetches it first).
func needEngine(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the embedded ClickHouse engine (-short)")
	}
	if _, err := os.Stat(eventlog.LibraryPath()); err != nil {
		t.Skipf("embedded ClickHouse engine not found at %s: run scripts/chdb/fetch.sh", eventlog.LibraryPath())
	}
}

// embeddedStores opens the embedded default under a fresh --data: the chDB event log and
// the embedded graph store, as 'kprobe-agent standalone --data' does.
func embeddedStores(t *testing.T) (*eventlog.Log, graphStore) {
	t.Helper()
	needEngine(t)
	ctx := context.Background()
	dir := t.TempDir()
	log, err := eventlog.OpenEmbedded(ctx, eventlog.EmbeddedDir(dir), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := embedded.Open(ctx, embedded.Dir(dir), embedded.Options{})
	if err != nil {
		log.Close()
		t.Fatal(err)
	}
	return log, g
}

// clusterStores opens the cluster shape as far as this machine has it: the graph in the
// Neo4j server `make test` starts; the event log through chDB, the same ClickHouse engine
// and schema a ClickHouse server runs (no server can be had here). The Neo4j database is
// shared, so the run's nodes carry run's names (see identity) and are deleted at the end.
func clusterStores(t *testing.T, run identity) (*eventlog.Log, graphStore) {
	t.Helper()
	needEngine(t)
	opts := neo4j.EnvOptions(os.Getenv)
	if testing.Short() || opts.URI == "" {
		t.Skip(neo4j.EnvURI + " unset: start Neo4j with `make neo4j-up` and export what `scripts/neo4j/neo4j.sh env` prints")
	}
	ctx := context.Background()
	g, err := neo4j.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The suite's service has closed g by now: delete through a store of its own.
		admin, err := neo4j.Open(context.Background(), opts)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer admin.Close()
		for _, p := range run.nodePrefixes() {
			if err := admin.Delete(context.Background(), p); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		if _, err := causal.ReadResult(context.Background(), admin, investigate.KindSettlement, run.id(incidentSettlement)); !errors.Is(err, causal.ErrNotFound) {
			t.Errorf("settlement %s still in Neo4j after the cleanup: %v", run.id(incidentSettlement), err)
		}
	})
	log, err := eventlog.OpenEmbedded(ctx, eventlog.EmbeddedDir(t.TempDir()), eventlog.Options{})
	if err != nil {
		g.Close()
		t.Fatal(err)
	}
	return log, g
}

// identity renames a recording for one run, so that two runs sharing a graph store never
// draw into the same nodes: business IDs take a prefix, traces new IDs, the node a suffix
// and loopback addresses one of their own (the graph names sockets by address). The zero
// identity keeps the recording's names.
type identity struct {
	prefix string // of business IDs
	node   string // the node's name; "" keeps it
	lo     netip.Addr
	traces map[string]string
}

// newIdentity returns names no other run has.
func newIdentity(t *testing.T) identity {
	t.Helper()
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	tag := hex.EncodeToString(b[:])
	return identity{prefix: "ct" + tag + "-", node: "ct" + tag, lo: netip.AddrFrom4([4]byte{127, b[0], b[1], max(b[2], 2)}),
		traces: map[string]string{}}
}

// id is the recording's business ID id as this run names it.
func (r identity) id(id string) string { return r.prefix + id }

// apply renames d in place.
func (r identity) apply(t *testing.T, d *dataset.Dataset) {
	t.Helper()
	if r.node == "" {
		return
	}
	for i := range d.Spans {
		s := &d.Spans[i]
		for _, c := range causal.DefaultMapping().Concepts {
			if v, ok := s.Attrs[c.IDAttr]; ok {
				s.Attrs[c.IDAttr] = r.id(v)
			}
		}
		if _, ok := r.traces[s.TraceID]; !ok {
			var b [16]byte
			if _, err := rand.Read(b[:]); err != nil {
				t.Fatal(err)
			}
			r.traces[s.TraceID] = hex.EncodeToString(b[:])
		}
		s.TraceID = r.traces[s.TraceID]
		s.Host = r.node
	}
	lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	for i := range d.Events {
		e := &d.Events[i]
		e.Node = r.node
		if e.SAddr == lo {
			e.SAddr = r.lo
		}
		if e.DAddr == lo {
			e.DAddr = r.lo
		}
	}
}

// nodePrefixes are the graph node IDs of this run's names, for cleanup.
func (r identity) nodePrefixes() []string {
	var out []string
	for _, c := range causal.DefaultMapping().Concepts {
		obj := causal.ObjectNodeID(c.Kind, r.prefix)
		out = append(out, obj, "cause/"+obj)
	}
	for _, tr := range r.traces {
		out = append(out, causal.SpanNodeID(tr, ""))
	}
	return append(out, "process/"+r.node+"/", "cpu/"+r.node+"/", "file/"+r.node+"/", "socket/"+r.lo.String()+":")
}

// readIncident reads the demo incident as this run names it, with failedSettlement's
// spans ended in error and the others ok.
func readIncident(t *testing.T, run identity) dataset.Dataset {
	t.Helper()
	f, err := os.Open(demoIncident)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := dataset.Read(f)
	if err != nil {
		t.Fatalf("%s: %v", demoIncident, err)
	}
	marked := 0
	for i := range d.Spans {
		s := &d.Spans[i]
		s.Status = "ok"
		if s.Attrs[causal.DefaultMapping().Concepts[0].IDAttr] == failedSettlement {
			s.Status, marked = "error", marked+1
		}
	}
	if marked == 0 {
		t.Fatalf("%s has no settlement %s to mark failed", demoIncident, failedSettlement)
	}
	run.apply(t, &d)
	return d
}

// record writes d through the write path 'kprobe-agent standalone' runs: the engine joins
// the events to the spans and writes both to the event log; the causal engine beside the
// write draws each business object's chain into the graph; what was written is offered to
// the live subscribers (the API's StreamLive).
func record(t *testing.T, log *eventlog.Log, g causal.Writer, hub *live.Hub, d dataset.Dataset) engine.Stats {
	t.Helper()
	ctx := context.Background()
	drawer, err := causal.NewEngine(causal.EngineOptions{Writer: g})
	if err != nil {
		t.Fatal(err)
	}
	drawn := make(chan error, 1)
	go func() { drawn <- drawer.Run(ctx) }()
	st, err := dataset.Import(ctx, live.Tap{W: causal.Sink{Next: log, Engine: drawer}, Hub: hub}, d, dataset.ImportOptions{})
	drawer.Close()
	if err := errors.Join(err, <-drawn); err != nil {
		t.Fatalf("recording the incident: %v", err)
	}
	if cs := drawer.Stats(); cs.Drawn == 0 || cs.WriteFailed != 0 {
		t.Fatalf("the causal engine drew %d chains, %d writes failed: want some, none failed", cs.Drawn, cs.WriteFailed)
	}
	if st.Written == 0 {
		t.Fatal("the engine wrote no events")
	}
	return st
}

// openService is the use cases over the stores, as every caller in this process reaches
// them; it owns the stores from then on.
func openService(t *testing.T, log *eventlog.Log, g graphStore) *investigate.Local {
	t.Helper()
	l, err := investigate.NewLocal(investigate.Options{Events: log, Graph: g})
	if err != nil {
		log.Close()
		g.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("closing the stores: %v", err)
		}
	})
	return l
}

// String names the identity in failures.
func (r identity) String() string {
	if r.node == "" {
		return "the recording's names"
	}
	return fmt.Sprintf("run %s", r.node)
}
