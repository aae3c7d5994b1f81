package wire

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/api/live"
	"github.com/kprobe/kprobe/cmd/internal/apiflag"
	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// A process that holds the stores (standalone; engine) answers the use cases for everyone
// else: the embedded engine admits one process per directory, so readers of --data come
// through the API socket inside it, and --api serves the same on TCP.

// servedService is the use cases over the stores this process writes. It never closes
// them: their owner does.
func servedService(log *slog.Logger, events *eventlog.Log, graph causal.Reader, m causal.Mapping) (investigate.Service, error) {
	opts := investigate.Options{Logger: log, Events: noCloseLog{events}, Mapping: m, Kinds: investigate.KindsOf(m)}
	if graph != nil {
		opts.Graph = noCloseGraph{graph}
	}
	return investigate.NewLocal(opts)
}

// eventLog is what the use cases read of the event log: events, and spans for chains
// computed on demand.
type eventLog interface {
	investigate.EventReader
	investigate.ChainLog
}

// noCloseLog and noCloseGraph hide the Close of a store the service does not own.
type noCloseLog struct{ eventLog }
type noCloseGraph struct{ causal.Reader }

// apiServing is what one process serves: the socket inside --data, --api, or both.
type apiServing struct {
	socket, tcp *apiflag.Serving
}

// startAPI serves svc (with hub's live feed) on the socket of data (when data is given)
// and on the --api address (when given).
func startAPI(ctx context.Context, log *slog.Logger, af apiflag.Server, data string, svc investigate.Service, hub *live.Hub, m causal.Mapping) (*apiServing, error) {
	a := &apiServing{}
	var err error
	if data != "" {
		lc := af.Config()
		// The socket is this user's alone (mode 0600): the file system is its authentication.
		lc.Addr, lc.TokenFile, lc.TLSCert, lc.TLSKey, lc.ClientCA = "unix:"+client.SocketPath(data), "", "", "", ""
		if a.socket, err = apiflag.Start(ctx, log, lc, svc, hub, apiflag.StartOptions{Business: m, Source: "--data " + data}); err != nil {
			return nil, fmt.Errorf("api socket in --data: %w", err)
		}
	}
	if af.Addr != "" {
		if a.tcp, err = apiflag.Start(ctx, log, af.Config(), svc, hub, apiflag.StartOptions{Business: m, Rate: af.RateLimit}); err != nil {
			a.stop()
			return nil, err
		}
	}
	return a, nil
}

func (a *apiServing) stop() {
	if a == nil {
		return
	}
	a.tcp.Stop()
	a.socket.Stop()
}

// summary prints where the API was, for the command's exit summary.
func (a *apiServing) summary(w io.Writer) {
	if a == nil {
		return
	}
	for _, s := range []*apiflag.Serving{a.socket, a.tcp} {
		if s != nil {
			fmt.Fprintln(w, s)
		}
	}
}

// waitForReaders waits while another process holds the embedded store under data without
// serving its API: a reader (kprobe-tui) holds it only for one query, so a recorder
// starting meanwhile waits for that query instead of failing.
func waitForReaders(ctx context.Context, log *slog.Logger, data string, timeout time.Duration) error {
	dir := eventlog.EmbeddedDir(data)
	deadline := time.Now().Add(timeout)
	logged := false
	for {
		inUse, err := eventlog.EmbeddedInUse(dir)
		if err != nil || !inUse {
			return err
		}
		if c, err := client.New(client.Options{Addr: "unix:" + client.SocketPath(data)}); err == nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err = c.Ping(pctx)
			cancel()
			c.Close()
			if err == nil {
				return fmt.Errorf("%s is held by another recorder (its API answers at %s): stop it, or give this one another --data", data, client.SocketPath(data))
			}
		}
		if !logged {
			log.Info("the event log is open in another process (a reader's query); waiting for it", "dir", dir)
			logged = true
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s stays held by another process (not a recorder: it serves no API): stop it and start again", dir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
