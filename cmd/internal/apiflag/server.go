package apiflag

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/kprobe/kprobe/api/live"
	"github.com/kprobe/kprobe/api/server"
	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// Server is the flags of a command that serves the API.
type Server struct {
	Addr      string
	TokenFile string
	TLSCert   string
	TLSKey    string
	ClientCA  string
	Insecure  bool
	RateLimit float64
}

// Register adds --api (listen address), --api-token-file, --api-tls-cert, --api-tls-key,
// --api-client-ca, --api-insecure and --api-rate to fs.
func (s *Server) Register(fs *flag.FlagSet, defaultAddr string) {
	fs.StringVar(&s.Addr, "api", envOr("KPROBE_API_LISTEN", defaultAddr), "serve the kprobe API here: host:port or unix:PATH ('' : not at all)")
	fs.StringVar(&s.TokenFile, "api-token-file", os.Getenv("KPROBE_API_TOKEN_FILE"), "bearer tokens the API accepts, one a line: the token or sha256:HEX of it")
	fs.StringVar(&s.TLSCert, "api-tls-cert", os.Getenv("KPROBE_API_TLS_CERT"), "the API's TLS certificate (PEM)")
	fs.StringVar(&s.TLSKey, "api-tls-key", os.Getenv("KPROBE_API_TLS_KEY"), "key of --api-tls-cert")
	fs.StringVar(&s.ClientCA, "api-client-ca", os.Getenv("KPROBE_API_CLIENT_CA"), "accept clients whose certificate this CA signed (mTLS)")
	fs.BoolVar(&s.Insecure, "api-insecure", false, "allow serving the API beyond loopback without authentication")
	fs.Float64Var(&s.RateLimit, "api-rate", 200, "API requests per second per caller (negative: no limit)")
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// Config is the listener configuration the flags describe.
func (s *Server) Config() server.ListenConfig {
	return server.ListenConfig{Addr: s.Addr, TokenFile: s.TokenFile, TLSCert: s.TLSCert, TLSKey: s.TLSKey,
		ClientCA: s.ClientCA, Insecure: s.Insecure}
}

// Serving is an API being served in the background.
type Serving struct {
	Addr string
	stop context.CancelFunc
	done chan error
}

// Stop ends the API (its streams end) and waits for it.
func (r *Serving) Stop() error {
	if r == nil {
		return nil
	}
	r.stop()
	return <-r.done
}

// StartOptions are what Start passes on to the server beside the service.
type StartOptions struct {
	Rate     float64        // requests per second per caller (0: the server's default)
	Source   string         // how a report's reader reaches the data, as flags
	Business causal.Mapping // which spans are which business objects in the live feed
}

// Start serves svc (and hub's live feed, when not nil) on lc in the background. It returns
// once the address is bound, so a bad address or certificate fails the command at once.
func Start(ctx context.Context, log *slog.Logger, lc server.ListenConfig, svc investigate.Service, hub *live.Hub, o StartOptions) (*Serving, error) {
	ln, err := server.Listen(lc)
	if err != nil {
		return nil, err
	}
	if o.Source == "" {
		o.Source = "--api " + ln.Addr()
	}
	srv, err := server.New(server.Options{Logger: log, Service: svc, Live: hub, Auth: ln.Auth(), RateLimit: o.Rate,
		Source: o.Source, Business: o.Business})
	if err != nil {
		ln.Close()
		return nil, err
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	r := &Serving{Addr: ln.Addr(), stop: stop, done: make(chan error, 1)}
	go func() { r.done <- ln.Serve(sctx, log, srv.Handler()) }()
	auth := "none (loopback or socket only)"
	switch {
	case ln.Auth() != nil && ln.TLS():
		auth = "tokens or client certificates, TLS"
	case ln.Auth() != nil:
		auth = "tokens, no TLS"
	case ln.TLS():
		auth = "none, TLS"
	}
	log.Info("serving the kprobe API", "addr", r.Addr, "auth", auth)
	return r, nil
}

// String says in one line where the API is, for a command's summary.
func (r *Serving) String() string {
	if r == nil {
		return "api: not served"
	}
	return fmt.Sprintf("api: %s", r.Addr)
}
