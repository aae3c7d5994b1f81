package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/kprobe/kprobe/cmd/internal/apiflag"
	"github.com/kprobe/kprobe/cmd/internal/chflag"
	"github.com/kprobe/kprobe/cmd/internal/datadir"
	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/graphstore/embedded"
	"github.com/kprobe/kprobe/pipeline/graphstore/neo4j"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// runAPI serves the investigation API over stores it does not write: a ClickHouse server
// and Neo4j (stateless: run several behind a load balancer), or a --data directory (through
// its recorder's socket while one runs).
func runAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var clickhouse, data, neo4jURI, business, logLevel string
	var af apiflag.Server
	af.Register(fs, "127.0.0.1:8443")
	var chf chflag.Flags
	chf.Register(fs)
	fs.StringVar(&clickhouse, "clickhouse", env("CLICKHOUSE_ADDR", ""), "ClickHouse server host:port (or clickhouse:// DSN) of the event log")
	fs.StringVar(&data, "data", env("DATA", ""), "the embedded stores under this directory instead of --clickhouse")
	fs.StringVar(&neo4jURI, "neo4j", env("NEO4J_URI", ""), "Neo4j holding the causal graph (bolt://, bolt+s://, neo4j+s://; user and password from KPROBE_NEO4J_USER and KPROBE_NEO4J_PASSWORD or _PASSWORD_FILE)")
	fs.StringVar(&business, "business", env("BUSINESS", ""), "business mapping file (TOML), as given to the engine")
	fs.StringVar(&logLevel, "log-level", env("LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: kprobe-agent api (--clickhouse ADDR [--neo4j URI] | --data DIR) [--api ADDR] [--api-token-file FILE] [--api-tls-cert F --api-tls-key F] [--api-client-ca F]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if (clickhouse == "") == (data == "") {
		return fmt.Errorf("give exactly one of --clickhouse ADDR or --data DIR")
	}
	if af.Addr == "" {
		return fmt.Errorf("--api ADDR is required: where to serve")
	}
	log, err := newLogger(stderr, logLevel)
	if err != nil {
		return err
	}
	mapping, err := causal.LoadMapping(business)
	if err != nil {
		return err
	}
	auth, err := chf.Auth()
	if err != nil {
		return err
	}
	var svc investigate.Service
	if data != "" {
		// Never hold the directory: a recorder may start there at any time.
		svc, err = datadir.New(datadir.Options{Logger: log, Dir: data, Open: func(ctx context.Context) (investigate.Service, error) {
			return openStores(ctx, log, "", eventlog.ServerAuth{}, data, neo4jURI, mapping)
		}})
	} else {
		svc, err = openStores(ctx, log, clickhouse, auth, "", neo4jURI, mapping)
	}
	if err != nil {
		return err
	}
	defer svc.Close()
	source := "--clickhouse " + clickhouse
	if data != "" {
		source = "--data " + data
	}
	// No engine runs here, so no live feed: StreamLive answers Unavailable and names where
	// to ask instead.
	serving, err := apiflag.Start(ctx, log, af.Config(), svc, nil, apiflag.StartOptions{Rate: af.RateLimit, Business: mapping, Source: source})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return serving.Stop()
}

// openStores opens the event log (a server, or the embedded one under data) and the causal
// graph (Neo4j, or the embedded one under data, read-only), and the use cases over them.
func openStores(ctx context.Context, log *slog.Logger, clickhouse string, auth eventlog.ServerAuth, data, neo4jURI string, m causal.Mapping) (investigate.Service, error) {
	var l *eventlog.Log
	var err error
	if clickhouse != "" {
		l, err = eventlog.OpenServer(ctx, clickhouse, eventlog.Options{Logger: log, Server: auth})
	} else {
		l, err = eventlog.OpenEmbedded(ctx, eventlog.EmbeddedDir(data), eventlog.Options{Logger: log})
	}
	if err != nil {
		return nil, err
	}
	loc, err := investigate.NewLocal(investigate.Options{Logger: log, Events: l})
	if err != nil {
		l.Close()
		return nil, err
	}
	s := &ownedService{withChains: withChains{Local: loc, chains: investigate.Chains{Log: l, Mapping: m, Logger: log}}}
	switch {
	case neo4jURI != "":
		opts := neo4j.EnvOptions(os.Getenv)
		opts.URI, opts.Logger = neo4jURI, log
		g, err := neo4j.Open(ctx, opts)
		if err != nil {
			loc.Close()
			return nil, err
		}
		s.chains.Graph, s.graph = g, g
	case data != "":
		if _, err := os.Stat(embedded.Dir(data)); err == nil {
			g, err := embedded.Open(ctx, embedded.Dir(data), embedded.Options{ReadOnly: true, Logger: log})
			if err != nil {
				loc.Close()
				return nil, err
			}
			s.chains.Graph, s.graph = g, g
		}
	}
	return s, nil
}

// ownedService is withChains over stores it owns: Close closes them.
type ownedService struct {
	withChains
	graph interface{ Close() error }
}

func (s *ownedService) Close() error {
	err := s.Local.Close()
	if s.graph != nil {
		err = errors.Join(err, s.graph.Close())
	}
	return err
}
