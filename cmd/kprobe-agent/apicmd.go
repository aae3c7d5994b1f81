package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/kprobe/kprobe/cmd/internal/apiflag"
	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/cmd/internal/datadir"
	"github.com/kprobe/kprobe/cmd/internal/wire"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// runAPI serves the investigation API over stores it does not write: a ClickHouse server
// and Neo4j (stateless: run several behind a load balancer), or a --data directory (through
// its recorder's socket while one runs).
func runAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kprobe-agent api", flag.ContinueOnError)
	var src wire.Source
	src.RegisterStores(fs)
	var af apiflag.Server
	af.Register(fs, "127.0.0.1:8443")
	var logLevel string
	fs.StringVar(&logLevel, "log-level", env("LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: kprobe-agent api (--clickhouse ADDR [--neo4j URI] | --data DIR) [--api ADDR] [--api-token-file FILE] [--api-tls-cert F --api-tls-key F] [--api-client-ca F]\n\n")
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if (src.ClickHouse == "") == (src.Data == "") {
		return fmt.Errorf("give exactly one of --clickhouse ADDR or --data DIR")
	}
	if af.Addr == "" {
		return fmt.Errorf("--api ADDR is required: where to serve")
	}
	log, err := newLogger(stderr, logLevel)
	if err != nil {
		return err
	}
	src.Logger = log
	mapping, err := src.Mapping()
	if err != nil {
		return err
	}
	var svc investigate.Service
	if src.Data != "" {
		// Never hold the directory: a recorder may start there at any time.
		svc, err = datadir.New(datadir.Options{Logger: log, Dir: src.Data, Open: src.OpenStores})
	} else {
		svc, err = src.OpenStores(ctx)
	}
	if err != nil {
		return err
	}
	defer svc.Close()
	// No engine runs here, so no live feed: StreamLive answers Unavailable and names where
	// to ask instead.
	serving, err := apiflag.Start(ctx, log, af.Config(), svc, nil, apiflag.StartOptions{Rate: af.RateLimit, Business: mapping, Source: src.Flags()})
	if err != nil {
		return err
	}
	<-ctx.Done()
	return serving.Stop()
}
