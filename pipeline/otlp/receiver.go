package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"

	"github.com/kprobe/kprobe/pipeline/span"
)

// The standard OTLP ports, bound to loopback: callers that want the receiver reachable
// from elsewhere say so.
const (
	DefaultGRPCAddr = "127.0.0.1:4317"
	DefaultHTTPAddr = "127.0.0.1:4318"
)

// Defaults for zero ReceiverOptions fields.
const (
	DefaultMaxRequestBytes  = 8 << 20
	DefaultMaxInFlightBytes = 64 << 20
	DefaultAdmissionWait    = 2 * time.Second
	DefaultBodyTimeout      = 10 * time.Second
)

const (
	shutdownGrace = 5 * time.Second
	tracesPath    = "/v1/traces"
	// flowWindow fixes gRPC's HTTP/2 windows (and so turns off their growth to 16 MiB):
	// bytes a client may push ahead of the handler stay bounded per connection.
	flowWindow = 1 << 20
)

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	Logger *slog.Logger
	// GRPCAddr and HTTPAddr are the listen addresses: "host:port" ("127.0.0.1:0" picks a
	// port) or "unix:/path/to/socket"; "" disables that protocol.
	GRPCAddr string
	HTTPAddr string
	// Business selects the span attributes kept; the zero value keeps the defaults.
	Business span.Business
	// Node is this node's name as the recorder stamps it on events: spans from a sender
	// on this node that carry no host.name are taken as this node's. "" leaves them
	// without a host (they cannot join).
	Node string
	// MaxRequestBytes caps one request, after decompression; 0 means 8 MiB.
	MaxRequestBytes int
	// MaxInFlightBytes caps the request bytes held at once over every connection; a
	// request that finds no room within AdmissionWait is refused as busy (gRPC
	// Unavailable, HTTP 503: the SDKs retry later). 0 means 64 MiB.
	MaxInFlightBytes int64
	AdmissionWait    time.Duration // 0 means 2 s
	// BodyTimeout bounds how long a request's body may take to arrive: a sender that
	// trickles is cut off. 0 means 10 s.
	BodyTimeout time.Duration
	// AllowServices, when not empty, lists the service.name values whose spans are
	// accepted; other spans are rejected (OTLP partial success) and counted.
	AllowServices []string
	// AllowPeers, when not empty, lists the sender addresses accepted; requests from
	// others are refused (gRPC PermissionDenied, HTTP 403). Senders on a unix socket are
	// always accepted: the socket's file mode says who may connect.
	AllowPeers []netip.Prefix
	// ProcRoot is where /proc is mounted (tests point it elsewhere); "" means /proc.
	ProcRoot string
}

func (o ReceiverOptions) withDefaults() (ReceiverOptions, error) {
	if o.GRPCAddr == "" && o.HTTPAddr == "" {
		return o, errors.New("otlp receiver: no gRPC or HTTP address to listen on")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.MaxInFlightBytes <= 0 {
		o.MaxInFlightBytes = DefaultMaxInFlightBytes
	}
	if o.MaxInFlightBytes < int64(o.MaxRequestBytes) {
		return o, fmt.Errorf("otlp receiver: in-flight limit %d is below the request limit %d", o.MaxInFlightBytes, o.MaxRequestBytes)
	}
	if o.AdmissionWait <= 0 {
		o.AdmissionWait = DefaultAdmissionWait
	}
	if o.BodyTimeout <= 0 {
		o.BodyTimeout = DefaultBodyTimeout
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	return o, nil
}

// Sink receives the spans of one export request. The receiver calls it from many
// goroutines at once; an error makes the client retry (gRPC Unavailable, HTTP 503).
type Sink func(ctx context.Context, spans []span.Span) error

// ReceiverStats are the receiver's counters.
type ReceiverStats struct {
	Requests       uint64 // export requests decoded
	Spans          uint64 // spans handed to the sink
	InvalidSpans   uint64 // no trace or span ID, or ending before they start
	RefusedBusy    uint64 // requests refused by the in-flight limit
	RefusedPeer    uint64 // requests from a sender not in AllowPeers
	RefusedSpans   uint64 // spans of a service not in AllowServices
	BadRequests    uint64 // undecodable bodies, bad content types and encodings
	BodyTimeouts   uint64 // bodies that did not arrive within BodyTimeout
	HostFromNode   uint64 // spans without host.name given this node's name
	PIDFromPeer    uint64 // spans without process.pid given their sender's pid
	PIDUnresolved  uint64 // spans without process.pid whose sender could not be found
	InFlightBytes  int64
	InFlightPeak   int64
	SenderLookupNs uint64 // time spent finding senders' processes
}

type receiverCounters struct {
	requests, spans, invalid, refusedBusy, refusedPeer, refusedSpans, bad, bodyTimeouts,
	hostFromNode, pidFromPeer, pidUnresolved, lookupNs atomic.Uint64
}

// Receiver serves OTLP trace exports over gRPC and HTTP.
type Receiver struct {
	opts      ReceiverOptions
	log       *slog.Logger
	conv      Converter
	sink      Sink
	admit     *admission
	allowSvc  map[string]bool
	grpcLis   net.Listener
	httpLis   net.Listener
	cnt       receiverCounters
	closeOnce sync.Once
}

// NewReceiver binds the listeners, so Addrs is known before Run.
func NewReceiver(opts ReceiverOptions, sink func(ctx context.Context, spans []span.Span) error) (*Receiver, error) {
	if sink == nil {
		return nil, errors.New("otlp receiver: nil sink")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Receiver{
		opts:  opts,
		log:   opts.Logger.With("component", "otlp"),
		conv:  Converter{Business: opts.Business},
		sink:  sink,
		admit: newAdmission(opts.MaxInFlightBytes, opts.AdmissionWait),
	}
	if len(opts.AllowServices) > 0 {
		r.allowSvc = make(map[string]bool, len(opts.AllowServices))
		for _, s := range opts.AllowServices {
			r.allowSvc[s] = true
		}
	}
	locals := localAddrs()
	if opts.GRPCAddr != "" {
		if r.grpcLis, err = listen(opts.GRPCAddr, opts.ProcRoot, locals); err != nil {
			return nil, fmt.Errorf("listening for otlp grpc: %w", err)
		}
	}
	if opts.HTTPAddr != "" {
		if r.httpLis, err = listen(opts.HTTPAddr, opts.ProcRoot, locals); err != nil {
			r.Close()
			return nil, fmt.Errorf("listening for otlp http: %w", err)
		}
	}
	return r, nil
}

func listen(addr, procRoot string, locals func() []netip.Addr) (net.Listener, error) {
	var lc net.ListenConfig
	network := "tcp"
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", path
		// A socket file left by a process that died is in the way; a live one is not ours.
		if c, err := net.Dial("unix", addr); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another process", addr)
		}
		os.Remove(addr)
	}
	l, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	return &senderListener{Listener: l, procRoot: procRoot, locals: locals}, nil
}

// Addrs returns the bound addresses, "" for a disabled protocol.
func (r *Receiver) Addrs() (grpcAddr, httpAddr string) {
	if r.grpcLis != nil {
		grpcAddr = r.grpcLis.Addr().String()
	}
	if r.httpLis != nil {
		httpAddr = r.httpLis.Addr().String()
	}
	return grpcAddr, httpAddr
}

// Stats returns the counters; safe to call at any time.
func (r *Receiver) Stats() ReceiverStats {
	c := &r.cnt
	inUse, peak := r.admit.stats()
	return ReceiverStats{
		Requests: c.requests.Load(), Spans: c.spans.Load(), InvalidSpans: c.invalid.Load(),
		RefusedBusy: c.refusedBusy.Load(), RefusedPeer: c.refusedPeer.Load(), RefusedSpans: c.refusedSpans.Load(),
		BadRequests: c.bad.Load(), BodyTimeouts: c.bodyTimeouts.Load(),
		HostFromNode: c.hostFromNode.Load(), PIDFromPeer: c.pidFromPeer.Load(), PIDUnresolved: c.pidUnresolved.Load(),
		InFlightBytes: inUse, InFlightPeak: peak, SenderLookupNs: c.lookupNs.Load(),
	}
}

// Close releases the listeners of a receiver that will not Run.
func (r *Receiver) Close() error {
	var errs []error
	r.closeOnce.Do(func() {
		for _, l := range []net.Listener{r.grpcLis, r.httpLis} {
			if l != nil {
				if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
					errs = append(errs, err)
				}
			}
		}
	})
	return errors.Join(errs...)
}

// Run serves until ctx ends, then stops gracefully (in-flight exports get a few
// seconds). It returns nil when stopped by ctx. Run may be called once.
func (r *Receiver) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	var wg sync.WaitGroup

	if r.grpcLis != nil {
		gs := grpc.NewServer(
			grpc.MaxRecvMsgSize(r.opts.MaxRequestBytes),
			grpc.ForceServerCodec(rawCodec{}),
			grpc.InitialWindowSize(flowWindow),
			grpc.InitialConnWindowSize(flowWindow),
		)
		gs.RegisterService(&traceServiceDesc, r)
		wg.Go(func() {
			if err := gs.Serve(r.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("serving otlp grpc: %w", err)
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			stopped := make(chan struct{})
			go func() { gs.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(shutdownGrace):
				gs.Stop()
			}
		})
		r.log.Info("serving otlp grpc", "addr", r.grpcLis.Addr().String())
	}
	if r.httpLis != nil {
		mux := http.NewServeMux()
		mux.HandleFunc(tracesPath, r.serveHTTP)
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: r.opts.BodyTimeout, ConnContext: withSender}
		wg.Go(func() {
			if err := hs.Serve(r.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving otlp http: %w", err)
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
			defer scancel()
			if err := hs.Shutdown(sctx); err != nil {
				hs.Close()
			}
		})
		r.log.Info("serving otlp http", "addr", r.httpLis.Addr().String())
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	wg.Wait()
	r.Close()
	return err
}

// errPeerRefused is returned for a sender outside AllowPeers.
var errPeerRefused = errors.New("sender not allowed by this receiver")

// admitPeer applies AllowPeers to a request's sender.
func (r *Receiver) admitPeer(s *sender) error {
	if len(r.opts.AllowPeers) == 0 || (s != nil && s.unix) {
		return nil
	}
	if s != nil && s.addr.IsValid() {
		a := s.addr.Addr().Unmap()
		for _, p := range r.opts.AllowPeers {
			if p.Contains(a) {
				return nil
			}
		}
	}
	r.cnt.refusedPeer.Add(1)
	return errPeerRefused
}

// export converts one request, applies what is known of its sender, and hands the
// spans to the sink.
func (r *Receiver) export(ctx context.Context, td ptrace.Traces, s *sender) (ptraceotlp.ExportResponse, error) {
	r.cnt.requests.Add(1)
	spans, rejected := r.conv.Convert(td)
	r.cnt.invalid.Add(uint64(rejected))
	var msgs []string
	if rejected > 0 {
		msgs = append(msgs, "spans without trace or span id, or ending before they start")
	}
	if r.allowSvc != nil {
		kept := spans[:0]
		refused := 0
		for _, sp := range spans {
			if r.allowSvc[sp.Service] {
				kept = append(kept, sp)
			} else {
				refused++
			}
		}
		clear(spans[len(kept):])
		spans = kept
		if refused > 0 {
			r.cnt.refusedSpans.Add(uint64(refused))
			rejected += refused
			msgs = append(msgs, "spans of services this receiver does not accept")
		}
	}
	r.attribute(spans, s)
	resp := ptraceotlp.NewExportResponse()
	if rejected > 0 {
		ps := resp.PartialSuccess()
		ps.SetRejectedSpans(int64(rejected))
		ps.SetErrorMessage(strings.Join(msgs, "; "))
	}
	if len(spans) == 0 {
		return resp, nil
	}
	if err := r.sink(ctx, spans); err != nil {
		return resp, err
	}
	r.cnt.spans.Add(uint64(len(spans)))
	return resp, nil
}

// attribute fills in what the spans do not say from the connection they came on: the
// node for a local sender without host.name, the sending process for spans without
// process.pid (and the host pid for a containerised sender's own pid).
func (r *Receiver) attribute(spans []span.Span, s *sender) {
	if s == nil {
		return
	}
	for i := range spans {
		sp := &spans[i]
		if sp.Host == "" && s.local && r.opts.Node != "" {
			sp.Host, sp.HostFrom = r.opts.Node, span.FromReceiver
			r.cnt.hostFromNode.Add(1)
		}
		if !s.local || s.lookup == nil {
			continue
		}
		start := time.Now()
		pid, nspid, err := s.process(r.opts.ProcRoot)
		r.cnt.lookupNs.Add(uint64(time.Since(start)))
		switch {
		case sp.PID == 0 && pid != 0:
			sp.PID, sp.PIDFrom = pid, span.FromPeer
			r.cnt.pidFromPeer.Add(1)
		case sp.PID == 0:
			r.cnt.pidUnresolved.Add(1)
			if err != nil && r.cnt.pidUnresolved.Load() == 1 {
				r.log.Warn("cannot find the process sending spans without process.pid", "peer", s.addr, "err", err)
			}
		case pid != 0 && sp.PID == nspid && nspid != pid:
			sp.PID = pid // the sender's own pid inside its container: the host's is joined
		}
	}
}
