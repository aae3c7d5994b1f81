package main

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

// withChains is the use cases over the event log (Local) with chains from the causal
// graph or computed from the log (Chains).
type withChains struct {
	*investigate.Local
	chains investigate.Chains
}

func (w withChains) Chain(ctx context.Context, ref investigate.Ref) (investigate.Chain, error) {
	return w.chains.Chain(ctx, ref)
}

// localService is the use cases over the stores this process writes. It never closes
// them: their owner does.
func localService(log *slog.Logger, events investigate.EventReader, graph causal.Reader, m causal.Mapping) (investigate.Service, error) {
	loc, err := investigate.NewLocal(investigate.Options{Logger: log, Events: noClose{events}})
	if err != nil {
		return nil, err
	}
	c := investigate.Chains{Graph: graph, Mapping: m, Logger: log}
	if cl, ok := events.(investigate.ChainLog); ok {
		c.Log = cl // chains the graph lacks are computed from the event log
	}
	return withChains{Local: loc, chains: c}, nil
}

// noClose hides the Close of a store the service does not own.
type noClose struct{ investigate.EventReader }

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
