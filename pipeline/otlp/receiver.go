package otlp

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kprobe/kprobe/pipeline/span"
)

// The standard OTLP ports, bound to loopback: callers that want the receiver reachable
// from elsewhere say so.
const (
	DefaultGRPCAddr = "127.0.0.1:4317"
	DefaultHTTPAddr = "127.0.0.1:4318"
)

const (
	defaultMaxRequestBytes = 32 << 20
	shutdownGrace          = 5 * time.Second
	tracesPath             = "/v1/traces"
)

// ReceiverOptions configure a Receiver.
type ReceiverOptions struct {
	Logger *slog.Logger
	// GRPCAddr and HTTPAddr are the listen addresses ("127.0.0.1:0" picks a port); ""
	// disables that protocol. DefaultGRPCAddr and DefaultHTTPAddr are the usual values.
	GRPCAddr string
	HTTPAddr string
	// Business selects the span attributes kept; the zero value keeps the defaults.
	Business span.Business
	// MaxRequestBytes caps one request, after decompression; 0 means 32 MiB.
	MaxRequestBytes int
}

// Sink receives the spans of one export request. The receiver calls it from many
// goroutines at once; an error makes the client retry (gRPC Unavailable, HTTP 503).
type Sink func(ctx context.Context, spans []span.Span) error

// Receiver serves OTLP trace exports over gRPC and HTTP.
type Receiver struct {
	log       *slog.Logger
	conv      Converter
	sink      Sink
	maxBytes  int
	grpcLis   net.Listener
	httpLis   net.Listener
	closeOnce sync.Once
}

// NewReceiver binds the listeners, so Addrs is known before Run.
func NewReceiver(opts ReceiverOptions, sink func(ctx context.Context, spans []span.Span) error) (*Receiver, error) {
	if sink == nil {
		return nil, errors.New("otlp receiver: nil sink")
	}
	if opts.GRPCAddr == "" && opts.HTTPAddr == "" {
		return nil, errors.New("otlp receiver: no gRPC or HTTP address to listen on")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Receiver{
		log:      log.With("component", "otlp"),
		conv:     Converter{Business: opts.Business},
		sink:     sink,
		maxBytes: opts.MaxRequestBytes,
	}
	if r.maxBytes <= 0 {
		r.maxBytes = defaultMaxRequestBytes
	}
	var lc net.ListenConfig
	var err error
	if opts.GRPCAddr != "" {
		if r.grpcLis, err = lc.Listen(context.Background(), "tcp", opts.GRPCAddr); err != nil {
			return nil, fmt.Errorf("listening for otlp grpc: %w", err)
		}
	}
	if opts.HTTPAddr != "" {
		if r.httpLis, err = lc.Listen(context.Background(), "tcp", opts.HTTPAddr); err != nil {
			r.Close()
			return nil, fmt.Errorf("listening for otlp http: %w", err)
		}
	}
	return r, nil
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
		gs := grpc.NewServer(grpc.MaxRecvMsgSize(r.maxBytes))
		ptraceotlp.RegisterGRPCServer(gs, &grpcServer{r: r})
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
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
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

// export converts and hands one request to the sink.
func (r *Receiver) export(ctx context.Context, td ptrace.Traces) (ptraceotlp.ExportResponse, error) {
	spans, rejected := r.conv.Convert(td)
	resp := ptraceotlp.NewExportResponse()
	if rejected > 0 {
		ps := resp.PartialSuccess()
		ps.SetRejectedSpans(int64(rejected))
		ps.SetErrorMessage("spans without trace or span id, or ending before they start")
	}
	if len(spans) == 0 {
		return resp, nil
	}
	if err := r.sink(ctx, spans); err != nil {
		return resp, err
	}
	return resp, nil
}

type grpcServer struct {
	ptraceotlp.UnimplementedGRPCServer
	r *Receiver
}

func (s *grpcServer) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	resp, err := s.r.export(ctx, req.Traces())
	if err != nil {
		s.r.log.Warn("otlp grpc export refused", "err", err)
		return resp, status.Error(codes.Unavailable, err.Error())
	}
	return resp, nil
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	isJSON := false
	switch mt {
	case "application/x-protobuf", "application/protobuf":
	case "application/json":
		isJSON = true
	default:
		http.Error(w, "unsupported content type "+mt, http.StatusUnsupportedMediaType)
		return
	}

	var body io.Reader = http.MaxBytesReader(w, req.Body, int64(r.maxBytes))
	switch req.Header.Get("Content-Encoding") {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			http.Error(w, "bad gzip body", http.StatusBadRequest)
			return
		}
		defer zr.Close()
		// Cap the inflated size too: a small gzip body can expand without bound.
		body = io.LimitReader(zr, int64(r.maxBytes)+1)
	default:
		http.Error(w, "unsupported content encoding", http.StatusUnsupportedMediaType)
		return
	}
	data, err := io.ReadAll(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading body failed", http.StatusBadRequest)
		return
	}
	if len(data) > r.maxBytes {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}

	exportReq := ptraceotlp.NewExportRequest()
	if isJSON {
		err = exportReq.UnmarshalJSON(data)
	} else {
		err = exportReq.UnmarshalProto(data)
	}
	if err != nil {
		http.Error(w, "bad otlp request: "+err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := r.export(req.Context(), exportReq.Traces())
	if err != nil {
		r.log.Warn("otlp http export refused", "err", err)
		http.Error(w, "sink unavailable", http.StatusServiceUnavailable)
		return
	}
	var out []byte
	if isJSON {
		out, err = resp.MarshalJSON()
		w.Header().Set("Content-Type", "application/json")
	} else {
		out, err = resp.MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}
	if err != nil {
		http.Error(w, "encoding response failed", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}
