package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpcreflect"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kprobe/kprobe/api/kprobe/v1/kprobev1connect"
	"github.com/kprobe/kprobe/pipeline/certs"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// SocketName is the API's unix socket inside a data directory: 'kprobe-agent standalone
// --data D' serves it while it holds the embedded store, and readers of D use it then.
const SocketName = "api.sock"

// SocketPath is the API socket of the data directory data.
func SocketPath(data string) string { return filepath.Join(data, SocketName) }

// Options says how to reach an API server.
type Options struct {
	// Addr is host:port, http://host:port, https://host:port or unix:PATH.
	Addr string
	// Token is sent as a bearer token.
	Token string
	// TLS speaks TLS to a host:port address (implied by https://, CAFile or CertFile).
	TLS bool
	// CAFile verifies the server (default: the system's roots); ServerName overrides the
	// name checked in its certificate.
	CAFile     string
	ServerName string
	// CertFile and KeyFile are this client's certificate (mTLS).
	CertFile, KeyFile string
	// Timeout bounds each unary call (default 30s; streams are bounded by their ctx only).
	Timeout time.Duration
	// Compress asks for gzip-compressed answers: worth it over a network, wasted CPU on a
	// unix socket (default: on for host:port, off for unix:).
	Compress *bool
}

// Client is an investigate.Service over the API. It is safe for concurrent use.
type Client struct {
	addr    string
	rpc     kprobev1connect.InvestigationServiceClient
	health  *connect.Client[healthv1.HealthCheckRequest, healthv1.HealthCheckResponse]
	reflect *grpcreflect.Client
	hc      *http.Client
	timeout time.Duration
}

var _ investigate.Service = (*Client)(nil)

// New prepares a client; it does no I/O (see Ping).
func New(opts Options) (*Client, error) {
	if opts.Addr == "" {
		return nil, errors.New("api: no address given")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = dialer.DialContext
	var protos http.Protocols
	baseURL := ""
	switch {
	case strings.HasPrefix(opts.Addr, "unix:"):
		path := strings.TrimPrefix(opts.Addr, "unix:")
		tr.Proxy = nil
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", path)
		}
		baseURL = "http://kprobe.sock"
		protos.SetUnencryptedHTTP2(true)
	case strings.HasPrefix(opts.Addr, "https://"):
		baseURL = opts.Addr
		opts.TLS = true
	case strings.HasPrefix(opts.Addr, "http://"):
		baseURL = opts.Addr
	default:
		if _, _, err := net.SplitHostPort(opts.Addr); err != nil {
			return nil, fmt.Errorf("api address %q: want host:port, https://host:port or unix:PATH", opts.Addr)
		}
		if opts.TLS || opts.CAFile != "" || opts.CertFile != "" {
			opts.TLS = true
			baseURL = "https://" + opts.Addr
		} else {
			baseURL = "http://" + opts.Addr
		}
	}
	if opts.TLS {
		if strings.HasPrefix(baseURL, "http://") {
			return nil, fmt.Errorf("api address %s is plaintext (http://) but TLS options were given", opts.Addr)
		}
		cfg, err := tlsConfig(opts)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = cfg
		protos.SetHTTP2(true)
	} else {
		protos.SetUnencryptedHTTP2(true)
	}
	tr.Protocols = &protos
	var rt http.RoundTripper = tr
	if opts.Token != "" {
		rt = bearer{token: opts.Token, next: tr}
	}
	hc := &http.Client{Transport: rt}
	copts := []connect.ClientOption{connect.WithGRPC()}
	if compress := !strings.HasPrefix(opts.Addr, "unix:"); opts.Compress != nil && !*opts.Compress || opts.Compress == nil && !compress {
		copts = append(copts, connect.WithAcceptCompression("gzip", nil, nil))
	}
	return &Client{
		addr:    opts.Addr,
		rpc:     kprobev1connect.NewInvestigationServiceClient(hc, baseURL, copts...),
		health:  connect.NewClient[healthv1.HealthCheckRequest, healthv1.HealthCheckResponse](hc, baseURL+"/grpc.health.v1.Health/Check", connect.WithGRPC()),
		reflect: grpcreflect.NewClient(hc, baseURL, connect.WithGRPC()),
		hc:      hc,
		timeout: opts.Timeout,
	}, nil
}

func tlsConfig(opts Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: opts.ServerName}
	if opts.CAFile != "" {
		pool, err := certs.Pool("api CA", opts.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	cert, err := certs.KeyPair("api client certificate", opts.CertFile, opts.KeyFile)
	if err != nil {
		return nil, err
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg, nil
}

// bearer adds the token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// Ping answers whether the API is reachable, serving, and takes our credentials: the
// health check needs none (load balancers probe it), so Ping also lists the services
// through reflection, which does.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res, err := c.health.CallUnary(ctx, connect.NewRequest(&healthv1.HealthCheckRequest{Service: kprobev1connect.InvestigationServiceName}))
	if err != nil {
		return c.wrap("health", err)
	}
	if st := res.Msg.GetStatus(); st != healthv1.HealthCheckResponse_SERVING {
		return fmt.Errorf("api %s: not serving (%v)", c.addr, st)
	}
	rs := c.reflect.NewStream(ctx)
	_, err = rs.ListServices()
	rs.Close()
	if err != nil {
		return c.wrap("api", err)
	}
	return nil
}

// Close releases idle connections.
func (c *Client) Close() error {
	c.hc.CloseIdleConnections()
	return nil
}
