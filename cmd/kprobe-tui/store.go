package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/kprobe/kprobe/cmd/internal/chflag"
	"github.com/kprobe/kprobe/cmd/internal/datadir"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// storeFlags select the event log: the embedded one under --data, or a server.
type storeFlags struct {
	data       string
	clickhouse string
	ch         chflag.Flags
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.data, "data", os.Getenv("KPROBE_DATA"), "data directory of the embedded default (as given to 'kprobe-agent standalone --data')")
	fs.StringVar(&s.clickhouse, "clickhouse", os.Getenv("KPROBE_CLICKHOUSE_ADDR"), "ClickHouse server address host:port (instead of --data)")
	s.ch.Register(fs)
}

// open returns the use cases over the chosen event log. A --data directory is read
// through its recorder's API socket while one holds it, else opened for each call alone,
// so this command never locks a recorder out (however slowly its output is read).
func (s *storeFlags) open(ctx context.Context) (investigate.Service, error) {
	if s.data != "" && s.clickhouse == "" {
		if _, err := os.Stat(eventlog.EmbeddedDir(s.data)); err != nil {
			return nil, fmt.Errorf("no event log under %s: record one with 'kprobe-agent standalone --data %s'", s.data, s.data)
		}
		return datadir.New(datadir.Options{Dir: s.data, Open: s.openDirect})
	}
	return s.openDirect(ctx)
}

// openDirect opens the chosen event log in this process.
func (s *storeFlags) openDirect(ctx context.Context) (investigate.Service, error) {
	var l *eventlog.Log
	var err error
	switch {
	case s.data != "" && s.clickhouse != "":
		return nil, fmt.Errorf("give either --data or --clickhouse, not both")
	case s.clickhouse != "":
		var auth eventlog.ServerAuth
		if auth, err = s.ch.Auth(); err == nil {
			l, err = eventlog.OpenServer(ctx, s.clickhouse, eventlog.Options{Server: auth})
		}
	case s.data != "":
		dir := eventlog.EmbeddedDir(s.data)
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("no event log under %s: record one with 'kprobe-agent standalone --data %s'", s.data, s.data)
		}
		l, err = eventlog.OpenEmbedded(ctx, dir, eventlog.Options{})
	default:
		return nil, fmt.Errorf("no store given: use --data DIR or --clickhouse ADDR")
	}
	if err != nil {
		return nil, err
	}
	svc, err := investigate.NewLocal(investigate.Options{Events: l})
	if err != nil {
		l.Close()
		return nil, err
	}
	return svc, nil
}

// parseTime accepts RFC 3339 (with fractions) or integer nanoseconds since the epoch.
func parseTime(flagName, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return 0, fmt.Errorf("--%s %q: want RFC 3339 (2026-11-25T10:00:00.5Z) or nanoseconds since the epoch", flagName, v)
	}
	return t.UnixNano(), nil
}
