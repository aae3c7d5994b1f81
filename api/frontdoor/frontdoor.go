package frontdoor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	"charm.land/wish/v2"
	"charm.land/wish/v2/activeterm"
	wishtea "charm.land/wish/v2/bubbletea"
)

// NewSession builds the program of one SSH session. ctx ends with the session.
type NewSession func(ctx context.Context, user string) tea.Model

// Options configures a Server.
type Options struct {
	Logger *slog.Logger
	// Addr is the listen address (default ":2222").
	Addr string
	// HostKey is the server's private key file; it is created (ed25519) when missing.
	HostKey string
	// AuthorizedKeys lists the public keys let in (OpenSSH authorized_keys format).
	AuthorizedKeys string
	// Session builds each session's program.
	Session NewSession
	// IdleTimeout ends a session with no input for this long (default 30m).
	IdleTimeout time.Duration
	// MaxSessions caps the sessions at once (default 32).
	MaxSessions int
}

func (o Options) withDefaults() (Options, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Addr == "" {
		o.Addr = ":2222"
	}
	if o.HostKey == "" {
		return o, errors.New("ssh: no host key file given (--host-key)")
	}
	if o.AuthorizedKeys == "" {
		return o, errors.New("ssh: no authorized keys given (--authorized-keys FILE): public keys are the only way in")
	}
	if o.Session == nil {
		return o, errors.New("ssh: no session program")
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Minute
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 32
	}
	return o, nil
}

// Server is the SSH front door.
type Server struct {
	opts     Options
	log      *slog.Logger
	srv      *ssh.Server
	keys     *authorizedKeys
	sessions atomic.Int32
}

// New checks opts, loads the authorized keys and the host key.
func New(opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	keys, err := loadAuthorizedKeys(opts.AuthorizedKeys)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(opts.HostKey), 0o700); err != nil {
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	s := &Server{opts: opts, log: opts.Logger.With("component", "ssh"), keys: keys}
	// Only a public-key handler is set, so no password or keyboard-interactive method is
	// ever offered.
	s.srv, err = wish.NewServer(
		wish.WithAddress(opts.Addr),
		wish.WithHostKeyPath(opts.HostKey),
		wish.WithPublicKeyAuth(s.allow),
		wish.WithIdleTimeout(opts.IdleTimeout),
		wish.WithMiddleware(
			wishtea.Middleware(s.program),
			activeterm.Middleware(),
			s.admit,
		),
	)
	if err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	s.srv.HandshakeTimeout = 30 * time.Second
	return s, nil
}

// allow lets in the keys of the authorized_keys file (re-read when it changes).
func (s *Server) allow(ctx ssh.Context, key ssh.PublicKey) bool {
	ok, err := s.keys.contains(key)
	if err != nil {
		s.log.Error("authorized keys changed but cannot be read; the previous keys stay in force", "err", err)
	}
	s.log.Info("ssh login", "user", ctx.User(), "remote", ctx.RemoteAddr().String(),
		"key", fingerprint(key), "allowed", ok)
	return ok
}

// admit runs first: it caps the sessions at once and logs each session's end.
func (s *Server) admit(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		if int(s.sessions.Add(1)) > s.opts.MaxSessions {
			s.sessions.Add(-1)
			wish.Fatalln(sess, "kprobe: too many sessions at once; try again later")
			return
		}
		defer s.sessions.Add(-1)
		start := time.Now()
		next(sess)
		s.log.Info("ssh session ended", "user", sess.User(), "remote", sess.RemoteAddr().String(),
			"duration", time.Since(start).Round(time.Second))
	}
}

func (s *Server) program(sess ssh.Session) (tea.Model, []tea.ProgramOption) {
	return s.opts.Session(sess.Context(), sess.User()), nil
}

// Serve listens on the address and serves sessions until ctx ends; then it closes every
// session.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		s.srv.Close()
		<-done
		return nil
	}
}

// Listen binds the configured address.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	return ln, nil
}
