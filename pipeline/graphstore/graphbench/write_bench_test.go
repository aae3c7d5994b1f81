package graphbench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	driver "github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/graphstore/embedded"
	"github.com/kprobe/kprobe/pipeline/graphstore/neo4j"
)

// BenchmarkGraphWrite: nodes+edges written per second, in writes of 1,000 subjects (21,000
// items), by each store and by the baseline: a plain UNWIND … MERGE of the same rows into
// Neo4j in 5k-row transactions, with a uniqueness constraint (goal ≥ 50k/s).
func BenchmarkGraphWrite(b *testing.B) {
	b.Run("embedded", func(b *testing.B) {
		s, err := embedded.Open(context.Background(), b.TempDir(), embedded.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		benchWrite(b, "", s.Write)
	})
	b.Run("neo4j", func(b *testing.B) {
		s, err := neo4j.Open(context.Background(), neo4jOptions(b))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		prefix := fmt.Sprintf("kprobe-bench-write-%d/", time.Now().UnixNano())
		defer func() {
			if err := s.Delete(context.Background(), prefix); err != nil {
				b.Error(err)
			}
		}()
		benchWrite(b, prefix, s.Write)
	})
	b.Run("baseline-neo4j-unwind-merge", func(b *testing.B) {
		base := openBaseline(b)
		defer base.close()
		prefix := fmt.Sprintf("kprobe-bench-base-%d/", time.Now().UnixNano())
		defer base.delete(b, prefix)
		benchWrite(b, prefix, base.write)
	})
}

// benchWrite writes new subjects (nothing to merge into but the shared hubs), one batch
// per iteration, generated outside the timed part.
func benchWrite(b *testing.B, prefix string, write func(context.Context, causal.Graph) error) {
	b.Helper()
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	var timed time.Duration
	server0, serverOK := serverCPU()
	for b.Loop() {
		b.StopTimer()
		g := Batch(prefix, i*writeBatch, writeBatch)
		i++
		b.StartTimer()
		t0 := time.Now()
		if err := write(ctx, g); err != nil {
			b.Fatal(err)
		}
		timed += time.Since(t0)
	}
	items := float64(i * writeBatch * (NodesPerSubject + EdgesPerSubject))
	b.ReportMetric(items/timed.Seconds(), "items/s")
	// The server's CPU per item holds still on a busy machine where wall time does not:
	// reported when the server is the local one (its pid file is known) and written to.
	if server1, ok := serverCPU(); ok && serverOK && prefix != "" && server1 > server0 {
		b.ReportMetric(items/(server1-server0).Seconds(), "items/server-cpu-s")
	}
}

// serverCPU is the local Neo4j server's CPU time so far, from the pid file that
// scripts/neo4j/neo4j.sh keeps ($KPROBE_NEO4J_PID_FILE).
func serverCPU() (time.Duration, bool) {
	pid, err := os.ReadFile(os.Getenv("KPROBE_NEO4J_PID_FILE"))
	if err != nil {
		return 0, false
	}
	stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the command name: utime and stime are the 12th and 13th, in ticks.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, true
}

// baseline writes the way a first Neo4j integration does: MERGE both ends of every edge
// and the edge in one UNWIND, a generic relationship type with the type as a property
// (Cypher cannot take a relationship type from a parameter without APOC).
type baseline struct {
	drv driver.DriverWithContext
}

func openBaseline(b *testing.B) *baseline {
	b.Helper()
	o := neo4jOptions(b)
	pw := o.Password
	if pw == "" && o.PasswordFile != "" {
		p, err := os.ReadFile(o.PasswordFile)
		if err != nil {
			b.Fatal(err)
		}
		pw = string(p)
		if n := len(pw); n > 0 && pw[n-1] == '\n' {
			pw = pw[:n-1]
		}
	}
	user := o.User
	if user == "" {
		user = "neo4j"
	}
	drv, err := driver.NewDriverWithContext(o.URI, driver.BasicAuth(user, pw, ""))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, q := range []string{
		"CREATE CONSTRAINT kprobe_bench_base_id IF NOT EXISTS FOR (n:BenchBase) REQUIRE n.id IS UNIQUE",
		"CALL db.awaitIndexes(300)",
	} {
		if _, err := driver.ExecuteQuery(ctx, drv, q, nil, driver.EagerResultTransformer); err != nil {
			b.Fatal(err)
		}
	}
	return &baseline{drv: drv}
}

func (bl *baseline) close() { bl.drv.Close(context.Background()) }

const (
	baselineNodes = `UNWIND $rows AS n
MERGE (x:BenchBase {id: n.id}) SET x.label = n.label, x += n.props`
	baselineEdges = `UNWIND $rows AS e
MERGE (a:BenchBase {id: e.from})
MERGE (b:BenchBase {id: e.to})
MERGE (a)-[r:REL {type: e.type}]->(b)
SET r.explained_ns = e.explained_ns, r.rule = e.rule, r.confidence = e.confidence, r.join = e.join, r.evidence = e.evidence`
)

func (bl *baseline) write(ctx context.Context, g causal.Graph) error {
	nodes := make([]any, len(g.Nodes))
	for i, n := range g.Nodes {
		props := map[string]any{}
		for k, v := range n.Props {
			props[k] = v
		}
		nodes[i] = map[string]any{"id": n.ID, "label": n.Label, "props": props}
	}
	edges := make([]any, len(g.Edges))
	for i, e := range g.Edges {
		ev := make([]int64, len(e.Evidence))
		for j, id := range e.Evidence {
			ev[j] = int64(id)
		}
		edges[i] = map[string]any{"from": e.From, "to": e.To, "type": e.Type, "explained_ns": e.ExplainedNs,
			"rule": e.Rule, "confidence": e.Confidence, "join": e.Join, "evidence": ev}
	}
	sess := bl.drv.NewSession(ctx, driver.SessionConfig{})
	defer sess.Close(ctx)
	for _, st := range []struct {
		q    string
		rows []any
	}{{baselineNodes, nodes}, {baselineEdges, edges}} {
		for len(st.rows) > 0 {
			chunk := st.rows[:min(len(st.rows), 5_000)]
			st.rows = st.rows[len(chunk):]
			_, err := sess.ExecuteWrite(ctx, func(tx driver.ManagedTransaction) (any, error) {
				res, err := tx.Run(ctx, st.q, map[string]any{"rows": chunk})
				if err != nil {
					return nil, err
				}
				return res.Consume(ctx)
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (bl *baseline) delete(b *testing.B, prefix string) {
	ctx := context.Background()
	sess := bl.drv.NewSession(ctx, driver.SessionConfig{})
	defer sess.Close(ctx)
	res, err := sess.Run(ctx, `MATCH (n:BenchBase) WHERE n.id STARTS WITH $p
CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS`, map[string]any{"p": prefix})
	if err == nil {
		_, err = res.Consume(ctx)
	}
	if err != nil {
		b.Error(err)
	}
}
