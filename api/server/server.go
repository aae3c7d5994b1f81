package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"

	"github.com/kprobe/kprobe/api/kprobe/v1/kprobev1connect"
	"github.com/kprobe/kprobe/api/live"
	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// Options configures a Server. Zero values take the defaults in withDefaults.
type Options struct {
	Logger  *slog.Logger
	Service investigate.Service // required
	// Live feeds StreamLive with what the engine writes; nil when this process runs no
	// engine (StreamLive then answers Unavailable).
	Live *live.Hub
	// Business says which spans are which business objects in the live stream (default:
	// causal.DefaultMapping, as the engine's).
	Business causal.Mapping
	// Source is how a report's reader reaches the same data, as flags ("--api
	// kprobe.internal:8443"), for the commands the report prints.
	Source string
	// Auth authenticates callers; nil serves everyone (only safe on loopback or a unix
	// socket: see Listen).
	Auth *Auth
	// ReadMaxBytes caps one request message (default 1 MiB); bigger ones get
	// ResourceExhausted before they are decoded.
	ReadMaxBytes int
	// RateLimit is requests per second per caller (a token, a client certificate or an
	// address), with bursts of RateBurst; default 200/s, burst 400. Negative: no limit.
	RateLimit float64
	RateBurst int
	// MaxLiveStreams caps the StreamLive subscribers at once (default 64).
	MaxLiveStreams int
	// LiveBuffer is how many write batches a StreamLive subscriber may fall behind before
	// it misses some (default 256).
	LiveBuffer int
}

// Limits on what one request may ask for; larger asks are InvalidArgument.
const (
	defaultSubjects = 20
	maxSubjects     = 1000
	defaultPageSize = 1000
	maxPageSize     = 10_000
	maxIDs          = 10_000
	// maxStreamBytes bounds one streamed message, payloads included, well under the 4 MiB a
	// default gRPC client accepts.
	maxStreamBytes = 1 << 20
)

func (o Options) withDefaults() (Options, error) {
	if o.Service == nil {
		return o, fmt.Errorf("api server: no investigate.Service given")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReadMaxBytes <= 0 {
		o.ReadMaxBytes = 1 << 20
	}
	if o.RateLimit == 0 {
		o.RateLimit = 200
	}
	if o.RateBurst <= 0 {
		o.RateBurst = int(max(2*o.RateLimit, 1))
	}
	if o.MaxLiveStreams <= 0 {
		o.MaxLiveStreams = 64
	}
	if o.LiveBuffer <= 0 {
		o.LiveBuffer = 256
	}
	if len(o.Business.Concepts) == 0 {
		o.Business = causal.DefaultMapping()
	}
	return o, nil
}

// Server implements kprobev1connect.InvestigationServiceHandler.
type Server struct {
	opts    Options
	log     *slog.Logger
	svc     investigate.Service
	limiter *limiter
	live    atomic.Int32 // StreamLive subscribers now
}

var _ kprobev1connect.InvestigationServiceHandler = (*Server)(nil)

// New checks opts and builds a Server.
func New(opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, log: opts.Logger.With("component", "api"), svc: opts.Service}
	if opts.RateLimit > 0 {
		s.limiter = newLimiter(opts.RateLimit, opts.RateBurst)
	}
	return s, nil
}

// Handler routes the investigation service, gRPC health and reflection. Health answers
// without authentication (load balancers probe it); everything else passes Auth and the
// rate limit first.
func (s *Server) Handler() http.Handler {
	handlerOpts := []connect.HandlerOption{
		connect.WithReadMaxBytes(s.opts.ReadMaxBytes),
		connect.WithCodec(snakeJSON{name: "json"}),
		connect.WithCodec(snakeJSON{name: "json; charset=utf-8"}),
		connect.WithInterceptors(s.logErrors()),
	}
	guarded := http.NewServeMux()
	path, h := kprobev1connect.NewInvestigationServiceHandler(s, handlerOpts...)
	guarded.Handle(path, h)
	reflector := grpcreflect.NewStaticReflector(kprobev1connect.InvestigationServiceName)
	guarded.Handle(grpcreflect.NewHandlerV1(reflector, connect.WithReadMaxBytes(s.opts.ReadMaxBytes)))
	guarded.Handle(grpcreflect.NewHandlerV1Alpha(reflector, connect.WithReadMaxBytes(s.opts.ReadMaxBytes)))

	mux := http.NewServeMux()
	mux.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(kprobev1connect.InvestigationServiceName),
		connect.WithReadMaxBytes(4<<10)))
	mux.Handle("/", s.guard(guarded))
	return mux
}
