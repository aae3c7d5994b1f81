package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kprobe/kprobe/pipeline/certs"
)

// ListenConfig says where the API listens and who may call it: the --api* flags.
type ListenConfig struct {
	// Addr is host:port, or unix:PATH for a unix socket (created with mode 0600).
	Addr string
	// TLSCert and TLSKey are the listener's certificate and key (PEM files); without them a
	// TCP listener speaks plaintext (HTTP/2 without TLS).
	TLSCert, TLSKey string
	// ClientCA verifies client certificates (mTLS); it needs TLSCert.
	ClientCA string
	// TokenFile holds the accepted bearer tokens (see LoadTokenFile).
	TokenFile string
	// Insecure allows a TCP address beyond loopback without authentication.
	Insecure bool
}

// Listener is a bound API address with its TLS and authentication settled.
type Listener struct {
	ln   net.Listener
	tls  *tls.Config
	auth *Auth
	addr string
	path string // the unix socket to remove at the end
}

// Listen checks c and binds its address. Without authentication (no token file, no client
// CA) it binds only loopback addresses or a unix socket, unless c.Insecure.
func Listen(c ListenConfig) (*Listener, error) {
	if c.Addr == "" {
		return nil, errors.New("--api: no address given")
	}
	l := &Listener{addr: c.Addr}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, errors.New("--api-tls-cert and --api-tls-key go together")
	}
	if c.ClientCA != "" && c.TLSCert == "" {
		return nil, errors.New("--api-client-ca needs --api-tls-cert and --api-tls-key (client certificates travel over TLS)")
	}
	var digests [][32]byte
	if c.TokenFile != "" {
		var err error
		if digests, err = LoadTokenFile(c.TokenFile); err != nil {
			return nil, err
		}
	}
	if len(digests) > 0 || c.ClientCA != "" {
		auth, err := NewAuth(digests, c.ClientCA != "")
		if err != nil {
			return nil, err
		}
		l.auth = auth
	}
	if c.TLSCert != "" {
		cert, err := certs.KeyPair("--api-tls-cert/--api-tls-key", c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, err
		}
		l.tls = &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}
		if c.ClientCA != "" {
			pool, err := certs.Pool("--api-client-ca", c.ClientCA)
			if err != nil {
				return nil, err
			}
			l.tls.ClientCAs = pool
			// A token is enough on its own; a certificate, when sent, must verify.
			l.tls.ClientAuth = tls.VerifyClientCertIfGiven
			if len(digests) == 0 {
				l.tls.ClientAuth = tls.RequireAndVerifyClientCert
			}
		}
	}
	if path, ok := strings.CutPrefix(c.Addr, "unix:"); ok {
		ln, err := listenUnix(path)
		if err != nil {
			return nil, err
		}
		l.ln, l.path = ln, path
		return l, nil
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return nil, fmt.Errorf("--api %q: want host:port or unix:PATH", c.Addr)
	}
	if l.auth == nil && !c.Insecure && !isLoopback(host) {
		return nil, fmt.Errorf("--api %s: refusing to serve the API beyond this machine without authentication: "+
			"give --api-token-file or --api-client-ca (with --api-tls-cert/--api-tls-key), listen on 127.0.0.1, or add --api-insecure", c.Addr)
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("--api: %w", err)
	}
	l.ln = ln
	return l, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// listenUnix binds a unix socket that only this user can reach: it is bound under a
// temporary name, made 0600, then renamed into place, so it is never reachable with
// looser permissions. A live socket at path (another server) is an error; a stale one is
// replaced.
func listenUnix(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%s: another process already serves the API here", path)
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d", filepath.Base(path), os.Getpid()))
	if len(path) >= 104 || len(tmp) >= 104 {
		return nil, fmt.Errorf("unix socket path %s is too long (a socket path must stay under 104 bytes): use a shorter --data", path)
	}
	_ = os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("api socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("api socket: %w", err)
	}
	return ln, nil
}

// Addr is where the listener is bound (the resolved port for ":0").
func (l *Listener) Addr() string {
	if l.path != "" {
		return "unix:" + l.path
	}
	return l.ln.Addr().String()
}

// Auth is the authentication the listener's configuration asks for (nil: none).
func (l *Listener) Auth() *Auth { return l.auth }

// TLS reports whether the listener speaks TLS.
func (l *Listener) TLS() bool { return l.tls != nil }

// Close releases the address without serving.
func (l *Listener) Close() error {
	err := l.ln.Close()
	if l.path != "" {
		os.Remove(l.path)
	}
	return err
}

// Serve serves h until ctx ends, then closes every connection (streams end) and the
// listener. HTTP/2 is spoken with and without TLS, since gRPC needs it.
func (l *Listener) Serve(ctx context.Context, log *slog.Logger, h http.Handler) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           h,
		Protocols:         &protos,
		TLSConfig:         l.tls,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	done := make(chan error, 1)
	go func() {
		if l.tls != nil {
			done <- srv.ServeTLS(l.ln, "", "")
		} else {
			done <- srv.Serve(l.ln)
		}
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		// Requests run under ctx, so they (live streams too) end now; Shutdown gives their
		// answers a moment to leave, Close then cuts the HTTP/2 connections clients keep.
		sctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
		cancel()
		err = <-done
	}
	if l.path != "" {
		os.Remove(l.path)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
