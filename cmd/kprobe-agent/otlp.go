package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/kprobe/kprobe/pipeline/otlp"
)

// otlpFlags are the OTLP receiver's flags, shared by standalone and engine.
type otlpFlags struct {
	grpcAddr, httpAddr string
	allowServices      listFlag
	allowPeers         listFlag
}

func (f *otlpFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.grpcAddr, "otlp-grpc", env("OTLP_GRPC", otlp.DefaultGRPCAddr), "OTLP/gRPC listen address for spans, host:port or unix:PATH ('' to disable)")
	fs.StringVar(&f.httpAddr, "otlp-http", env("OTLP_HTTP", otlp.DefaultHTTPAddr), "OTLP/HTTP listen address for spans, host:port or unix:PATH ('' to disable)")
	fs.Var(&f.allowServices, "otlp-allow-service", "accept spans only of this service.name (repeatable; default: any)")
	fs.Var(&f.allowPeers, "otlp-allow-peer", "accept spans only from senders in this address or CIDR (repeatable; default: any)")
}

// options resolves the flags into receiver options; node names this node for spans sent
// from it without host.name.
func (f *otlpFlags) options(log *slog.Logger, node string) (otlp.ReceiverOptions, error) {
	o := otlp.ReceiverOptions{Logger: log, GRPCAddr: f.grpcAddr, HTTPAddr: f.httpAddr, Node: node,
		AllowServices: f.allowServices}
	for _, p := range f.allowPeers {
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return o, fmt.Errorf("--otlp-allow-peer %q: want an address or a CIDR", p)
			}
			o.AllowPeers = append(o.AllowPeers, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		pr, err := netip.ParsePrefix(p)
		if err != nil {
			return o, fmt.Errorf("--otlp-allow-peer %q: want an address or a CIDR", p)
		}
		o.AllowPeers = append(o.AllowPeers, pr)
	}
	return o, nil
}

// nodeName is the recorder's default node name: the host name.
func nodeName(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	h, _ := os.Hostname()
	return h
}

// serveOTLP starts the OTLP receiver feeding spans to sink, when an address is given.
// stop ends it, waits for it and prints its summary line; the receiver outlives ctx
// until then, so spans sent while the engine drains still arrive.
func serveOTLP(ctx context.Context, opts otlp.ReceiverOptions, sink otlp.Sink) (stop func(summary io.Writer), err error) {
	if opts.GRPCAddr == "" && opts.HTTPAddr == "" {
		return func(io.Writer) {}, nil
	}
	recv, err := otlp.NewReceiver(opts, sink)
	if err != nil {
		return nil, fmt.Errorf("starting OTLP receiver: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := recv.Run(rctx); err != nil {
			opts.Logger.Error("OTLP receiver stopped", "err", err)
		}
	}()
	return func(w io.Writer) {
		cancel()
		<-done
		if w != nil {
			s := recv.Stats()
			fmt.Fprintf(w, "otlp: requests=%d spans=%d host_from_node=%d pid_from_peer=%d pid_unresolved=%d invalid=%d refused_busy=%d refused_peer=%d refused_service_spans=%d bad_requests=%d body_timeouts=%d\n",
				s.Requests, s.Spans, s.HostFromNode, s.PIDFromPeer, s.PIDUnresolved, s.InvalidSpans,
				s.RefusedBusy, s.RefusedPeer, s.RefusedSpans, s.BadRequests, s.BodyTimeouts)
		}
	}, nil
}
