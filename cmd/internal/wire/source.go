package wire

import (
	"context"
	"errors"
	"io/fs"

	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/cmd/internal/apiflag"
	"github.com/kprobe/kprobe/cmd/internal/chflag"
	"github.com/kprobe/kprobe/cmd/internal/datadir"
	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/graphstore/embedded"
	"github.com/kprobe/kprobe/pipeline/graphstore/neo4j"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"golang.org/x/sys/unix"
)

// Source is where a command reads from: the embedded stores under --data, a cluster's
// stores (--clickhouse for the event log, --neo4j for the causal graph), or a kprobe API
// (--api and its TLS and token flags).
type Source struct {
	Data       string
	ClickHouse string
	CH         chflag.Flags // --clickhouse's TLS and credentials
	Neo4j      string       // the causal graph beside --clickhouse
	Business   string       // the business mapping file, as given to the engine
	API        apiflag.Client

	Logger *slog.Logger
}

// Register adds the flags of every way in: the stores' and the API's.
func (s *Source) Register(fs *flag.FlagSet) {
	s.RegisterStores(fs)
	s.API.Register(fs)
}

// RegisterStores adds the stores' flags only: --data, --clickhouse (with its TLS and
// credentials), --neo4j and --business.
func (s *Source) RegisterStores(fs *flag.FlagSet) {
	fs.StringVar(&s.Data, "data", os.Getenv("KPROBE_DATA"), "data directory of the embedded default (as given to 'kprobe-agent standalone --data')")
	fs.StringVar(&s.ClickHouse, "clickhouse", os.Getenv("KPROBE_CLICKHOUSE_ADDR"), "ClickHouse server address host:port or clickhouse:// DSN (instead of --data)")
	s.CH.Register(fs)
	fs.StringVar(&s.Neo4j, "neo4j", "", "the causal graph in Neo4j (bolt://, bolt+s://; user and password from KPROBE_NEO4J_USER and KPROBE_NEO4J_PASSWORD or _PASSWORD_FILE); default with --clickhouse: KPROBE_NEO4J_URI")
	fs.StringVar(&s.Business, "business", os.Getenv("KPROBE_BUSINESS"), "business mapping file, as given to kprobe-agent (default: the built-in mapping)")
}

// Flags is how the source was given, for the commands a report prints to reproduce a view.
func (s *Source) Flags() string {
	switch {
	case s.API.Set():
		return "--api " + s.API.Addr
	case s.ClickHouse != "":
		return "--clickhouse " + s.ClickHouse
	}
	return "--data " + s.Data
}

// given names the ways in that were given.
func (s *Source) given() []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{{"--data", s.Data != ""}, {"--clickhouse", s.ClickHouse != ""}, {"--api", s.API.Set()}} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

// Mapping is the business mapping of --business (the built-in one without it).
func (s *Source) Mapping() (causal.Mapping, error) { return causal.LoadMapping(s.Business) }

// Open returns the use cases over the source. A --data directory is read through its
// recorder's API socket while one holds it, else its stores are opened for each call
// alone (package datadir), so a reader never locks a recorder out.
func (s *Source) Open(ctx context.Context) (investigate.Service, error) {
	switch given := s.given(); {
	case len(given) == 2:
		return nil, fmt.Errorf("give either %s or %s, not both", given[0], given[1])
	case len(given) > 2:
		return nil, fmt.Errorf("give one of %s", strings.Join(given, ", "))
	case s.API.Set():
		return service(s.API.Dial(ctx))
	case s.ClickHouse != "":
		return s.OpenStores(ctx)
	case s.Data != "":
		return s.openData(ctx)
	}
	return nil, fmt.Errorf("no data given: use --data DIR (the embedded default), --clickhouse ADDR or --api HOST:PORT")
}

func (s *Source) openData(ctx context.Context) (investigate.Service, error) {
	data := s.Data
	if err := checkEventLog(data); err != nil {
		return nil, err
	}
	r, err := datadir.New(datadir.Options{Logger: s.Logger, Dir: data, Open: s.OpenStores})
	if err != nil {
		return nil, err
	}
	if r.API(ctx) == nil {
		// No recorder serves the directory: its stores must open here, and a caller with
		// another way in needs to know now, not at its first question.
		svc, err := s.OpenStores(ctx)
		if err != nil {
			r.Close()
			return nil, err
		}
		// Kept for the first questions, which usually follow at once.
		r.Adopt(svc)
	}
	return r, nil
}

// OpenStores opens the stores themselves, in this process: the event log (the ClickHouse
// server, or the embedded one under --data) and the causal graph (Neo4j, or the embedded
// one under --data when the engine drew one, read-only), with the use cases over them.
// Without a graph, chains are computed from the event log.
func (s *Source) OpenStores(ctx context.Context) (investigate.Service, error) {
	m, err := s.Mapping()
	if err != nil {
		return nil, err
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := investigate.Options{Logger: log, Mapping: m, Kinds: investigate.KindsOf(m)}
	var closers []io.Closer
	fail := func(err error) (investigate.Service, error) {
		for _, c := range closers {
			c.Close()
		}
		return nil, err
	}
	var l *eventlog.Log
	if s.ClickHouse != "" {
		auth, err := s.CH.Auth()
		if err != nil {
			return nil, err
		}
		l, err = eventlog.OpenServer(ctx, s.ClickHouse, eventlog.Options{Logger: log, Server: auth})
		if err != nil {
			return nil, err
		}
	} else {
		if err := checkEventLog(s.Data); err != nil {
			return nil, err
		}
		if l, err = eventlog.OpenEmbedded(ctx, eventlog.EmbeddedDir(s.Data), eventlog.Options{Logger: log}); err != nil {
			return nil, err
		}
	}
	opts.Events, closers = l, append(closers, l)
	switch uri := s.Neo4jURI(); {
	case uri != "":
		no := neo4j.EnvOptions(os.Getenv)
		no.URI, no.Logger = uri, log
		g, err := neo4j.Open(ctx, no)
		if err != nil {
			return fail(err)
		}
		opts.Graph, closers = g, append(closers, g)
	case s.ClickHouse == "" && exists(embedded.Dir(s.Data)):
		g, err := embedded.Open(ctx, embedded.Dir(s.Data), embedded.Options{ReadOnly: true, Logger: log})
		if err != nil {
			return fail(err)
		}
		opts.Graph, closers = g, append(closers, g)
	}
	svc, err := investigate.NewLocal(opts)
	if err != nil {
		return fail(err)
	}
	return svc, nil
}

// service is an API client as the use cases, and no typed nil beside an error.
func service(c *client.Client, err error) (investigate.Service, error) {
	if err != nil {
		return nil, err
	}
	return c, nil
}

// checkEventLog says, in one line, why the event log under data cannot be read: there is
// none, or this user may not read it (the recorder keeps it to its own user).
func checkEventLog(data string) error {
	dir := eventlog.EmbeddedDir(data)
	_, err := os.Stat(dir)
	if err == nil {
		err = unix.Access(dir, unix.R_OK|unix.X_OK)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no event log under %s: record one with 'kprobe-agent standalone --data %s'", data, data)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("reading the event log under %s: permission denied: it is readable by the user who recorded it only (run as that user, or as root)", data)
	}
	return fmt.Errorf("reading the event log under %s: %w", data, err)
}

// Neo4jURI is the causal graph in Neo4j to read chains from: --neo4j, or with
// --clickhouse the cluster's KPROBE_NEO4J_URI. A --data directory is one recording, whole:
// a Neo4j named only by the environment (a shell set up for the cluster) holds other
// recordings' subjects under the same IDs, and would answer with one of theirs. Without a
// graph, chains are computed from the directory's own events.
func (s *Source) Neo4jURI() string {
	if s.Neo4j != "" || s.ClickHouse == "" {
		return s.Neo4j
	}
	return os.Getenv(neo4j.EnvURI)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
