package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kprobe/kprobe/cmd/internal/wire"
	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/graphstore/embedded"
	"github.com/kprobe/kprobe/pipeline/graphstore/neo4j"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// runChain prints the causal chain of one business object: its causes ranked by the
// latency they explain, each with the process and resource it names and the path to it.
func runChain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf wire.Source
	sf.RegisterStores(fs)
	var neo4jURI, business, format, kind, id, trace string
	ids := map[string]*string{}
	for _, k := range []string{investigate.KindSettlement, investigate.KindPayment, investigate.KindClearingWindow, investigate.KindOrderBookOp} {
		ids[k] = new(string)
		fs.StringVar(ids[k], flagName(k), "", "the "+k+" with this ID")
	}
	fs.StringVar(&trace, "trace", "", "the business object at the root of this trace (hex trace ID)")
	fs.StringVar(&kind, "kind", "", "a kind of the business mapping (e.g. netting_run), with --id")
	fs.StringVar(&id, "id", "", "the ID of the --kind object")
	fs.StringVar(&neo4jURI, "neo4j", os.Getenv(neo4j.EnvURI), "read causal chains from this Neo4j (with --clickhouse; user and password as for kprobe-agent)")
	fs.StringVar(&business, "business", os.Getenv("KPROBE_BUSINESS"), "business mapping file, as given to kprobe-agent (default: the built-in mapping)")
	fs.StringVar(&format, "format", "text", "output: text, json or markdown (the incident report's section)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: kprobe-tui chain (--data DIR | --clickhouse ADDR --neo4j URI) (--settlement ID | --payment ID | --trace ID | --kind K --id ID) [--format text|json|markdown]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var ref investigate.Ref
	var given []string
	for k, v := range ids {
		if *v != "" {
			ref, given = investigate.Ref{Kind: k, ID: *v}, append(given, "--"+flagName(k))
		}
	}
	if kind != "" || id != "" {
		if kind == "" || id == "" {
			return fmt.Errorf("--kind and --id go together")
		}
		ref, given = investigate.Ref{Kind: kind, ID: id}, append(given, "--kind")
	}
	if trace != "" {
		ref, given = investigate.Ref{TraceID: trace}, append(given, "--trace")
	}
	if len(given) != 1 {
		return fmt.Errorf("give one subject: --settlement ID, --payment ID, --trace ID or --kind K --id ID (got %d)", len(given))
	}
	if format != "text" && format != "json" && format != "markdown" {
		return fmt.Errorf("--format %q: want text, json or markdown", format)
	}
	mapping, err := causal.LoadMapping(business)
	if err != nil {
		return err
	}
	chains, closeAll, err := openChains(ctx, sf, neo4jURI, mapping)
	if err != nil {
		return err
	}
	defer closeAll()
	ch, err := chains.Chain(ctx, ref)
	if err != nil {
		if errors.Is(err, investigate.ErrNotFound) {
			if chains.Log == nil {
				return fmt.Errorf("no %s in the causal graph (chains are not yet computed from the event log on demand)", investigate.RefName(ref))
			}
			return fmt.Errorf("no such %s", investigate.RefName(ref))
		}
		return err
	}
	switch format {
	case "json":
		enc := json.NewEncoder(stdout)
		return enc.Encode(ch)
	case "markdown":
		investigate.WriteChainMarkdown(stdout, ch)
		return nil
	}
	return investigate.WriteChainText(stdout, ch)
}

func flagName(kind string) string {
	switch kind {
	case investigate.KindClearingWindow:
		return "clearing-window"
	case investigate.KindOrderBookOp:
		return "order"
	}
	return kind
}

// openChains opens the causal graph (the embedded one under --data, or Neo4j) and the
// event log the chains are computed from when the graph lacks them.
func openChains(ctx context.Context, sf wire.Source, neo4jURI string, m causal.Mapping) (investigate.Chains, func(), error) {
	c := investigate.Chains{Mapping: m}
	var closers []func() error
	closeAll := func() {
		for _, f := range closers {
			f()
		}
	}
	switch {
	case neo4jURI != "":
		opts := neo4j.EnvOptions(os.Getenv)
		opts.URI = neo4jURI
		st, err := neo4j.Open(ctx, opts)
		if err != nil {
			return c, nil, err
		}
		c.Graph, closers = st, append(closers, st.Close)
	case sf.Data != "":
		if _, err := os.Stat(embedded.Dir(sf.Data)); err == nil {
			st, err := embedded.Open(ctx, embedded.Dir(sf.Data), embedded.Options{ReadOnly: true})
			if err != nil {
				return c, nil, err
			}
			c.Graph, closers = st, append(closers, st.Close)
		}
	}
	log, err := openChainLog(ctx, sf)
	if err != nil {
		closeAll()
		return c, nil, err
	}
	if log != nil {
		c.Log, closers = log, append(closers, log.Close)
	}
	if c.Graph == nil && c.Log == nil {
		closeAll()
		return c, nil, fmt.Errorf("nothing to read chains from: give --data DIR, or --clickhouse ADDR with --neo4j URI")
	}
	return c, closeAll, nil
}

// chainLogCloser is an event log that chains can be computed from.
type chainLogCloser interface {
	investigate.ChainLog
	Close() error
}

// openChainLog opens the event log for on-demand chains. The event log cannot read spans
// back yet (it is being restructured), so for now chains come from the causal graph only.
func openChainLog(ctx context.Context, sf wire.Source) (chainLogCloser, error) { return nil, nil }
