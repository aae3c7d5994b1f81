package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/cmd/internal/wire"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// runChain prints the causal chain of one business object: its causes ranked by the
// latency they explain, each with the process and resource it names and the path to it.
func runChain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kprobe-tui chain", flag.ContinueOnError)
	var src wire.Source
	src.Register(fs)
	var format, kind, id, trace string
	ids := map[string]*string{}
	for _, k := range []string{investigate.KindSettlement, investigate.KindPayment, investigate.KindClearingWindow, investigate.KindOrderBookOp} {
		ids[k] = new(string)
		fs.StringVar(ids[k], flagName(k), "", "the "+k+" with this ID")
	}
	fs.StringVar(&trace, "trace", "", "the business object at the root of this trace (hex trace ID)")
	fs.StringVar(&kind, "kind", "", "a kind of the business mapping (e.g. netting_run), with --id")
	fs.StringVar(&id, "id", "", "the ID of the --kind object")
	fs.StringVar(&format, "format", "text", "output: text, json or markdown (the incident report's section)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: kprobe-tui chain (--data DIR | --clickhouse ADDR --neo4j URI | --api HOST:PORT) (--settlement ID | --payment ID | --trace ID | --kind K --id ID) [--format text|json|markdown]\n\n")
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args, stdout); err != nil {
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
	// The mapping first: a bad file is the first thing to fix.
	if _, err := src.Mapping(); err != nil {
		return err
	}
	if src.ClickHouse != "" && src.Data == "" && !src.API.Set() && src.Neo4jURI() == "" {
		return fmt.Errorf("--clickhouse needs --neo4j URI for the causal graph (or KPROBE_NEO4J_URI)")
	}
	svc, err := src.Open(ctx)
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
