package wire

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/pipeline/otlp"
)

// OTLPFlags are the OTLP receiver's flags.
type OTLPFlags struct {
	GRPCAddr, HTTPAddr string
	AllowServices      List
	AllowPeers         List
}

// Register adds --otlp-grpc, --otlp-http, --otlp-allow-service and --otlp-allow-peer.
func (f *OTLPFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.GRPCAddr, "otlp-grpc", cli.Env("OTLP_GRPC", otlp.DefaultGRPCAddr), "OTLP/gRPC listen address for spans, host:port or unix:PATH ('' to disable)")
	fs.StringVar(&f.HTTPAddr, "otlp-http", cli.Env("OTLP_HTTP", otlp.DefaultHTTPAddr), "OTLP/HTTP listen address for spans, host:port or unix:PATH ('' to disable)")
	fs.Var(&f.AllowServices, "otlp-allow-service", "accept spans only of this service.name (repeatable; default: any)")
	fs.Var(&f.AllowPeers, "otlp-allow-peer", "accept spans only from senders in this address or CIDR (repeatable; default: any)")
}

// options resolves the flags into receiver options; node names this node for spans sent
// from it without host.name.
func (f *OTLPFlags) options(log *slog.Logger, node string) (otlp.ReceiverOptions, error) {
	o := otlp.ReceiverOptions{Logger: log, GRPCAddr: f.GRPCAddr, HTTPAddr: f.HTTPAddr, Node: node,
		AllowServices: f.AllowServices}
	for _, p := range f.AllowPeers {
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

// NodeName is the node's name: the flag's value, or else the host name.
func NodeName(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	h, _ := os.Hostname()
	return h
}

// serveOTLP starts the OTLP receiver feeding spans to sink, when an address is given.
// halt stops it taking spans and returns once every export in flight has handed its
// spans to sink; stop halts it and prints its summary line. The receiver outlives ctx
// until then, so spans sent while the recording ends still arrive.
func serveOTLP(ctx context.Context, opts otlp.ReceiverOptions, sink otlp.Sink) (halt func(), stop func(summary io.Writer), err error) {
	if opts.GRPCAddr == "" && opts.HTTPAddr == "" {
		return func() {}, func(io.Writer) {}, nil
	}
	recv, err := otlp.NewReceiver(opts, sink)
	if err != nil {
		return nil, nil, fmt.Errorf("starting OTLP receiver: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := recv.Run(rctx); err != nil {
			opts.Logger.Error("OTLP receiver stopped", "err", err)
		}
	}()
	halt = sync.OnceFunc(func() {
		cancel()
		<-done
	})
	return halt, func(w io.Writer) {
		halt()
		if w != nil {
			s := recv.Stats()
			fmt.Fprintf(w, "otlp: requests=%d spans=%d host_from_node=%d pid_from_peer=%d pid_unresolved=%d invalid=%d refused_busy=%d refused_peer=%d refused_service_spans=%d bad_requests=%d body_timeouts=%d\n",
				s.Requests, s.Spans, s.HostFromNode, s.PIDFromPeer, s.PIDUnresolved, s.InvalidSpans,
				s.RefusedBusy, s.RefusedPeer, s.RefusedSpans, s.BadRequests, s.BodyTimeouts)
		}
	}, nil
}
