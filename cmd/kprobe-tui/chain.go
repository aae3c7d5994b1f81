package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kprobe/kprobe/cmd/internal/apiflag"
	"github.com/kprobe/kprobe/cmd/internal/datadir"
	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/graphstore/embedded"
	"github.com/kprobe/kprobe/pipeline/graphstore/neo4j"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// runChain prints the causal chain of one business object: its causes ranked by the
// latency they explain, each with the process and resource it names and the path to it.
func runChain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("chain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	var api apiflag.Client
	api.Register(fs)
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
		fmt.Fprint(stderr, "usage: kprobe-tui chain (--data DIR | --clickhouse ADDR --neo4j URI | --api ADDR) (--settlement ID | --payment ID | --trace ID | --kind K --id ID) [--format text|json|markdown]\n\n")
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
	svc, err := openChains(ctx, sf, &api, neo4jURI, mapping)
	if err != nil {
		return err
	}
	defer svc.Close()
	ch, err := svc.Chain(ctx, ref)
	if err != nil {
		if errors.Is(err, investigate.ErrNotFound) {
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

// openChains returns the use cases over the chosen stores with the causal graph: under
// --data, through the recorder's API socket while one holds the directory, else the
// embedded event log and graph; in a cluster, ClickHouse and Neo4j; or a remote API.
func openChains(ctx context.Context, sf storeFlags, api *apiflag.Client, neo4jURI string, m causal.Mapping) (investigate.Service, error) {
	switch {
	case api.Set() && (sf.data != "" || sf.clickhouse != ""):
		return nil, fmt.Errorf("give --api or the stores (--data, --clickhouse), not both")
	case api.Set():
		return api.Dial(ctx)
	case sf.data != "" && sf.clickhouse != "":
		return nil, fmt.Errorf("give either --data or --clickhouse, not both")
	case sf.clickhouse != "":
		if neo4jURI == "" {
			return nil, fmt.Errorf("--clickhouse needs --neo4j URI for the causal graph (or KPROBE_NEO4J_URI)")
		}
		l, err := eventlog.OpenServer(ctx, sf.clickhouse, eventlog.Options{})
		if err != nil {
			return nil, err
		}
		opts := neo4j.EnvOptions(os.Getenv)
		opts.URI = neo4jURI
		g, err := neo4j.Open(ctx, opts)
		if err != nil {
			l.Close()
			return nil, err
		}
		return investigate.NewLocal(investigate.Options{Events: l, Graph: g, Mapping: m, Kinds: investigate.KindsOf(m)})
	case sf.data != "":
		data := sf.data
		if _, err := os.Stat(eventlog.EmbeddedDir(data)); err != nil {
			return nil, fmt.Errorf("no event log under %s: record one with 'kprobe-agent standalone --data %s'", data, data)
		}
		return datadir.New(datadir.Options{Dir: data, Open: func(ctx context.Context) (investigate.Service, error) {
			return openLocalChains(ctx, data, m)
		}})
	}
	return nil, fmt.Errorf("no store given: use --data DIR, or --clickhouse ADDR with --neo4j URI")
}

// openLocalChains is the use cases over the embedded stores under data: the event log,
// and the graph the engine drew, when there is one (a store recorded without the causal
// engine has none: chains are then computed from the event log).
func openLocalChains(ctx context.Context, data string, m causal.Mapping) (investigate.Service, error) {
	l, err := eventlog.OpenEmbedded(ctx, eventlog.EmbeddedDir(data), eventlog.Options{})
	if err != nil {
		return nil, err
	}
	opts := investigate.Options{Events: l, Mapping: m, Kinds: investigate.KindsOf(m)}
	if _, err := os.Stat(embedded.Dir(data)); err == nil {
		g, err := embedded.Open(ctx, embedded.Dir(data), embedded.Options{ReadOnly: true})
		if err != nil {
			l.Close()
			return nil, err
		}
		opts.Graph = g
	}
	svc, err := investigate.NewLocal(opts)
	if err != nil {
		l.Close()
		if opts.Graph != nil {
			opts.Graph.(*embedded.Store).Close()
		}
		return nil, err
	}
	return svc, nil
}
