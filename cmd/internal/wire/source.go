package wire

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/cmd/internal/apiflag"
	"github.com/kprobe/kprobe/cmd/internal/datadir"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// Source is where a command reads from: the embedded stores under --data, a ClickHouse
// server (--clickhouse), or a kprobe API (--api and its TLS and token flags).
type Source struct {
	Data       string
	ClickHouse string
	API        apiflag.Client
}

// Register adds --data, --clickhouse and the --api flags to fs.
func (s *Source) Register(fs *flag.FlagSet) {
	s.RegisterStores(fs)
	s.API.Register(fs)
}

// RegisterStores adds --data and --clickhouse only, for a command that reads the stores
// themselves.
func (s *Source) RegisterStores(fs *flag.FlagSet) {
	fs.StringVar(&s.Data, "data", os.Getenv("KPROBE_DATA"), "data directory of the embedded default (as given to 'kprobe-agent standalone --data')")
	fs.StringVar(&s.ClickHouse, "clickhouse", os.Getenv("KPROBE_CLICKHOUSE_ADDR"), "ClickHouse server address host:port (instead of --data)")
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

// given names the flags that were given.
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

// Open returns the use cases over the source. Under --data, while 'kprobe-agent
// standalone' holds the directory (one process may open the embedded engine at a time),
// it reads through the API socket standalone serves inside it (package datadir).
func (s *Source) Open(ctx context.Context) (investigate.Service, error) {
	switch given := s.given(); {
	case len(given) == 2:
		return nil, fmt.Errorf("give either %s or %s, not both", given[0], given[1])
	case len(given) > 2:
		return nil, fmt.Errorf("give one of %s", strings.Join(given, ", "))
	case s.API.Set():
		return service(s.API.Dial(ctx))
	case s.ClickHouse != "":
		l, err := eventlog.OpenServer(ctx, s.ClickHouse, eventlog.Options{})
		if err != nil {
			return nil, err
		}
		return local(l)
	case s.Data != "":
		// Through the recorder's API socket while one holds the directory, else the
		// stores under it, opened per call (datadir decides each time).
		data := s.Data
		r, err := datadir.New(datadir.Options{Dir: data, Open: func(ctx context.Context) (investigate.Service, error) {
			return OpenData(ctx, data)
		}})
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	return nil, fmt.Errorf("no data given: use --data DIR (the embedded default), --clickhouse ADDR or --api HOST:PORT")
}

// OpenData returns the use cases over the embedded stores under data, in this process.
func OpenData(ctx context.Context, data string) (investigate.Service, error) {
	dir := eventlog.EmbeddedDir(data)
	if !exists(dir) {
		return nil, fmt.Errorf("no event log under %s: record one with 'kprobe-agent standalone --data %s'", data, data)
	}
	l, err := eventlog.OpenEmbedded(ctx, dir, eventlog.Options{})
	if err != nil {
		return nil, err
	}
	return local(l)
}

// local is the use cases over an event log they then own.
func local(l *eventlog.Log) (investigate.Service, error) {
	svc, err := investigate.NewLocal(investigate.Options{Events: l})
	if err != nil {
		l.Close()
		return nil, err
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

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
