package datadir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// Options configures a Reader.
type Options struct {
	Logger *slog.Logger
	// Dir is the data directory (--data).
	Dir string
	// Open opens the use cases over the stores under Dir, in this process (required).
	Open func(ctx context.Context) (investigate.Service, error)
	// Wait is how long a call waits for a process that holds Dir without serving the API
	// (another reader's query, a recorder starting) to let go; default 30s.
	Wait time.Duration
	// Linger is how long the stores this process opened stay open after the last call
	// that used them, for the next call of a burst; default 1s, negative: closed after
	// every call. A recorder starting meanwhile waits that much longer for them.
	Linger time.Duration
}

// Reader is investigate.Service over a data directory, through whichever way is open.
type Reader struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	api    *client.Client
	lastOK time.Time // the API last answered; a ping within a second of it is skipped

	held held // the stores opened in this process (held.go)
}

var _ investigate.Service = (*Reader)(nil)

// New checks opts; it does no I/O.
func New(opts Options) (*Reader, error) {
	if opts.Dir == "" || opts.Open == nil {
		return nil, errors.New("datadir: a directory and a way to open it are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Wait <= 0 {
		opts.Wait = 30 * time.Second
	}
	if opts.Linger == 0 {
		opts.Linger = time.Second
	}
	return &Reader{opts: opts, log: opts.Logger.With("component", "datadir", "dir", opts.Dir)}, nil
}

// Socket is where a recorder holding the directory serves the API.
func (r *Reader) Socket() string { return client.SocketPath(r.opts.Dir) }

// API returns a client of the recorder's API socket when one answers, else nil.
func (r *Reader) API(ctx context.Context) *client.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := os.Stat(r.Socket()); err != nil {
		r.dropLocked()
		return nil
	}
	if r.api == nil {
		c, err := client.New(client.Options{Addr: "unix:" + r.Socket()})
		if err != nil {
			return nil
		}
		r.api = c
	}
	if time.Since(r.lastOK) < time.Second {
		return r.api
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.api.Ping(pctx); err != nil {
		r.log.Debug("API socket does not answer; a stale socket of a recorder that died?", "err", err)
		r.dropLocked()
		return nil
	}
	r.lastOK = time.Now()
	return r.api
}

func (r *Reader) dropLocked() {
	r.lastOK = time.Time{}
	if r.api != nil {
		r.api.Close()
		r.api = nil
	}
}

// do runs f against the recorder's API when it serves one, else against the stores
// opened in this process (held for a burst of calls: held.go). When a process holds the directory without an API (a
// recorder starting, another reader mid-query) it waits for one or the other.
func (r *Reader) do(ctx context.Context, f func(investigate.Service) error) error {
	deadline := time.Now().Add(r.opts.Wait)
	dir := eventlog.EmbeddedDir(r.opts.Dir)
	for {
		if c := r.API(ctx); c != nil {
			err := f(c)
			if connect.CodeOf(err) != connect.CodeUnavailable {
				return err
			}
			r.mu.Lock()
			r.lastOK = time.Time{}
			r.mu.Unlock()
			if r.API(ctx) != nil {
				return err
			}
			// The recorder went away mid-call: read the store itself.
			continue
		}
		svc, ok, err := r.stores(ctx, dir)
		if err != nil {
			return err
		}
		if ok {
			defer r.release()
			return f(svc)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is held by another process that serves no API socket (%s): "+
				"a reader that is slow to finish, or a recorder started without it; try again, or read through that process's --api",
				r.opts.Dir, r.Socket())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Subjects implements investigate.Service.
func (r *Reader) Subjects(ctx context.Context, q investigate.SubjectQuery) (out []investigate.Subject, err error) {
	err = r.do(ctx, func(s investigate.Service) (err error) { out, err = s.Subjects(ctx, q); return err })
	return out, err
}

// Chain implements investigate.Service.
func (r *Reader) Chain(ctx context.Context, ref investigate.Ref) (out investigate.Chain, err error) {
	err = r.do(ctx, func(s investigate.Service) (err error) { out, err = s.Chain(ctx, ref); return err })
	return out, err
}

// Events implements investigate.Service.
func (r *Reader) Events(ctx context.Context, q investigate.EventQuery) (out []event.Event, err error) {
	err = r.do(ctx, func(s investigate.Service) (err error) { out, err = s.Events(ctx, q); return err })
	return out, err
}

// SyscallLog implements investigate.Service.
func (r *Reader) SyscallLog(ctx context.Context, q investigate.SyscallLogQuery) (out []event.Event, err error) {
	err = r.do(ctx, func(s investigate.Service) (err error) { out, err = s.SyscallLog(ctx, q); return err })
	return out, err
}

// Live streams what the recorder holding the directory records; without one there is
// nothing live to show.
func (r *Reader) Live(ctx context.Context, f client.LiveFilter) (*client.LiveStream, error) {
	c := r.API(ctx)
	if c == nil {
		return nil, fmt.Errorf("nothing is recording into %s (no API socket answers at %s)", r.opts.Dir, r.Socket())
	}
	return c.Live(ctx, f)
}

// Close releases the API client and the held stores, if any.
func (r *Reader) Close() error {
	r.closeHeld()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropLocked()
	return nil
}
