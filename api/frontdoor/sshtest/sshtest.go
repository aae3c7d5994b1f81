// Package sshtest is a real SSH client for tests of the front door: keys, a session with
// a pseudo-terminal, and a screen that waits until it shows what the test expects.
package sshtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// NewKey is a fresh ed25519 key.
func NewKey(t testing.TB) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// WriteAuthorizedKeys writes an authorized_keys file letting in keys.
func WriteAuthorizedKeys(t testing.TB, path string, keys ...gossh.Signer) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("# the on-call team\n")
	for _, k := range keys {
		b.Write(gossh.MarshalAuthorizedKey(k.PublicKey()))
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Config is a client configuration with the given ways to log in.
func Config(auth ...gossh.AuthMethod) *gossh.ClientConfig {
	return &gossh.ClientConfig{User: "oncall", Auth: auth,
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
}

// Terminal is an interactive session on an 80x24 pseudo-terminal.
type Terminal struct {
	Screen *Screen
	Stdin  io.Writer
	sess   *gossh.Session
	client *gossh.Client
}

// Open logs in with key and starts a shell on a pseudo-terminal.
func Open(t testing.TB, addr string, key gossh.Signer) *Terminal {
	t.Helper()
	c, err := gossh.Dial("tcp", addr, Config(gossh.PublicKeys(key)))
	if err != nil {
		t.Fatal(err)
	}
	sess, err := c.NewSession()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	term := &Terminal{Screen: &Screen{ch: make(chan struct{}, 1)}, sess: sess, client: c}
	t.Cleanup(func() { sess.Close(); c.Close() })
	if err := sess.RequestPty("xterm-256color", 24, 80, gossh.TerminalModes{gossh.ECHO: 0}); err != nil {
		t.Fatal(err)
	}
	sess.Stdout = term.Screen
	if term.Stdin, err = sess.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	return term
}

// Wait waits for the session to end, failing the test after timeout.
func (term *Terminal) Wait(t testing.TB, timeout time.Duration) {
	t.Helper()
	ended := make(chan error, 1)
	go func() { ended <- term.sess.Wait() }()
	select {
	case <-ended:
	case <-time.After(timeout):
		t.Fatalf("the session did not end within %v", timeout)
	}
}

// Screen collects what a session drew.
type Screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
	ch  chan struct{}
}

func (s *Screen) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	select {
	case s.ch <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (s *Screen) has(words ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range words {
		if !strings.Contains(s.buf.String(), w) {
			return false
		}
	}
	return true
}

// WaitFor waits until the screen has shown every word, or fails with what it shows.
func (s *Screen) WaitFor(t testing.TB, words ...string) {
	t.Helper()
	deadline := time.After(3 * time.Minute) // a bound for failures: the first screen of a loaded -race run can be slow
	for !s.has(words...) {
		select {
		case <-s.ch:
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("the screen never showed %q; it shows:\n%s", words, s.buf.String())
		}
	}
}
