package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/graphstore/neo4j"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// TestEngineDrawsChainsIntoNeo4j: the cluster shape. The demo is recorded through Kafka
// into `engine --neo4j`; the causal engine beside the event-log write draws each
// settlement into the real Neo4j, and what Neo4j holds is exactly the chain the rules
// compute from the event log on demand.
func TestEngineDrawsChainsIntoNeo4j(t *testing.T) {
	needRoot(t)
	brokers := e2eBrokers(t)
	nopts := neo4j.EnvOptions(os.Getenv)
	if nopts.URI == "" {
		t.Skip(neo4j.EnvURI + " unset: start Neo4j with `make neo4j-up`")
	}
	_, demo := e2eTools(t)
	prefix, group := e2ePrefix(t, brokers)
	data := t.TempDir()
	port := e2eFreePort(t)
	// Settlement IDs of this run alone: the Neo4j database is shared.
	first := 7_000_000 + (os.Getpid()%100_000)*10
	slow := strconv.Itoa(first + 2)
	ctx := context.Background()
	g, err := neo4j.Open(ctx, nopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() }) // after the deletes below (cleanups run last first)
	t.Cleanup(func() {
		run := strconv.Itoa(first / 10)
		for _, p := range []string{"settlement/" + run, "payment/PAY-" + run, "clearing_window/CW-" + run, "order_book_op/ORD-" + run,
			"cause/settlement/" + run, "cause/payment/PAY-" + run, "cause/clearing_window/CW-" + run, "cause/order_book_op/ORD-" + run} {
			if err := g.Delete(context.Background(), p); err != nil {
				t.Errorf("cleanup %s: %v", p, err)
			}
		}
	})

	eng := e2eStart(t, "engine", agent(t), "engine", "--kafka", brokers, "--data", data, "--group", group,
		"--topic-prefix", prefix, "--otlp-grpc", "127.0.0.1:"+strconv.Itoa(port), "--otlp-http", "", "--neo4j", nopts.URI)
	eng.waitOutput(t, "engine running", 60*time.Second)
	rec := e2eStart(t, "record", agent(t), "record", "--kafka", brokers, "--topic-prefix", prefix, "--",
		demo, "--otlp", "127.0.0.1:"+strconv.Itoa(port), "--settlements", "5", "--first-settlement", strconv.Itoa(first), "--first-payment", strconv.Itoa(first*10),
		"--incident", "slow-storage", "--incident-settlement", slow, "--ledger", filepath.Join(t.TempDir(), "ledger"))
	if err := rec.wait(t, 60*time.Second); err != nil {
		t.Fatalf("record: %v\n%s", err, rec.out.String())
	}
	e2eWaitCaughtUp(t, brokers, group, prefix, eng, 30*time.Second)
	e2eStopEngine(t, eng)
	out := eng.out.String()
	if !regexp.MustCompile(`causal: drawn=[1-9]\d* write_failed=0 .* graph: neo4j `).MatchString(out) {
		t.Fatalf("the engine drew nothing into Neo4j:\n%s", out)
	}

	drawn, err := causal.ReadResult(ctx, g, "settlement", slow)
	if err != nil {
		t.Fatalf("settlement %s in Neo4j: %v", slow, err)
	}
	l, err := eventlog.OpenEmbedded(ctx, eventlog.EmbeddedDir(data), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	local, err := investigate.NewLocal(investigate.Options{Events: l})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	onDemand, err := local.Chain(ctx, investigate.Ref{Kind: "settlement", ID: slow})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(onDemand, investigate.ChainOf(drawn)); diff != "" {
		t.Errorf("Neo4j's chain differs from the one computed on demand (-on demand +neo4j):\n%s", diff)
	}
	// The injected journal writes are among the causes (their rank is the accuracy
	// test's business, on a recording shielded from other load).
	target := regexp.MustCompile(`incident=slow-storage target=file:\d+:(\d+)`).FindStringSubmatch(rec.out.String())
	if target == nil {
		t.Fatalf("the demo named no journal:\n%s", rec.out.String())
	}
	found := false
	for _, c := range onDemand.Causes {
		found = found || (c.Kind == investigate.CauseStorage && strings.HasSuffix(c.Resource, " inode "+target[1]))
	}
	if !found {
		t.Errorf("no storage cause on the journal (inode %s) in %+v", target[1], onDemand.Causes)
	}
}
