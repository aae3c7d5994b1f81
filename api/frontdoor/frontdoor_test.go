package frontdoor_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	gossh "golang.org/x/crypto/ssh"

	"github.com/kprobe/kprobe/api/frontdoor"
	"github.com/kprobe/kprobe/api/frontdoor/sshtest"
	"github.com/kprobe/kprobe/pipeline/investigate/investigatetest"
	"github.com/kprobe/kprobe/ui"
)

// start serves the workstation over the fixture incident, letting in only known.
func start(t *testing.T, known gossh.Signer) string {
	t.Helper()
	ak := filepath.Join(t.TempDir(), "authorized_keys")
	sshtest.WriteAuthorizedKeys(t, ak, known)
	return startWith(t, ak)
}

// startWith serves it letting in the keys of the authorized_keys file ak.
func startWith(t *testing.T, ak string) string {
	t.Helper()
	svc := investigatetest.New(50)
	srv, err := frontdoor.New(frontdoor.Options{
		Addr: "127.0.0.1:0", HostKey: filepath.Join(t.TempDir(), "host_ed25519"), AuthorizedKeys: ak,
		Session: func(ctx context.Context, user string) tea.Model {
			return ui.New(ctx, ui.Options{Service: svc, Source: "--api test", Refresh: -1})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestSSHKnownKeyGetsTheStartScreen(t *testing.T) {
	key := sshtest.NewKey(t)
	term := sshtest.Open(t, start(t, key), key)
	term.Screen.WaitFor(t, "slowest settlements", investigatetest.Incident)
	// q quits the workstation, and that ends the session.
	if _, err := term.Stdin.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	term.Wait(t, 30*time.Second)
}

func TestSSHRefusesUnknownKeysAndPasswords(t *testing.T) {
	known := sshtest.NewKey(t)
	addr := start(t, known)
	// The known key gets in, so the refusals below are the server's choice.
	c, err := gossh.Dial("tcp", addr, sshtest.Config(gossh.PublicKeys(known)))
	if err != nil {
		t.Fatalf("known key: %v", err)
	}
	c.Close()
	for name, auth := range map[string]gossh.AuthMethod{
		"unknown key": gossh.PublicKeys(sshtest.NewKey(t)),
		"password":    gossh.Password("hunter2"),
		"keyboard":    gossh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return []string{"x"}, nil }),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := gossh.Dial("tcp", addr, sshtest.Config(auth))
			if err == nil {
				c.Close()
				t.Fatal("let in")
			}
			if !strings.Contains(err.Error(), "unable to authenticate") {
				t.Errorf("refusal: %v", err)
			}
		})
	}
}

func TestSSHWithoutTerminal(t *testing.T) {
	key := sshtest.NewKey(t)
	addr := start(t, key)
	c, err := gossh.Dial("tcp", addr, sshtest.Config(gossh.PublicKeys(key)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out, err := sess.CombinedOutput("ls /")
	if err == nil {
		t.Fatalf("a command without a terminal ran: %s", out)
	}
	if !strings.Contains(string(out), "PTY") {
		t.Errorf("no-terminal session said %q", out)
	}
}

func TestAuthorizedKeysFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("ssh-ed25519 not-base64!\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("# nobody\n"), 0o600)
	for name, path := range map[string]string{"malformed": bad, "empty": empty, "missing": filepath.Join(dir, "none")} {
		t.Run(name, func(t *testing.T) {
			_, err := frontdoor.New(frontdoor.Options{HostKey: filepath.Join(dir, "hk"), AuthorizedKeys: path,
				Session: func(context.Context, string) tea.Model { return nil }})
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestSSHRevokedKey: editing authorized_keys takes effect without a restart.
func TestSSHRevokedKey(t *testing.T) {
	old, next := sshtest.NewKey(t), sshtest.NewKey(t)
	ak := filepath.Join(t.TempDir(), "authorized_keys")
	sshtest.WriteAuthorizedKeys(t, ak, old)
	addr := startWith(t, ak)
	login := func(k gossh.Signer) error {
		c, err := gossh.Dial("tcp", addr, sshtest.Config(gossh.PublicKeys(k)))
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := login(old); err != nil {
		t.Fatalf("old key before the edit: %v", err)
	}
	sshtest.WriteAuthorizedKeys(t, ak, next)
	later := time.Now().Add(time.Minute)
	os.Chtimes(ak, later, later)
	if err := login(old); err == nil {
		t.Error("the revoked key still gets in")
	}
	if err := login(next); err != nil {
		t.Errorf("the added key: %v", err)
	}
}
