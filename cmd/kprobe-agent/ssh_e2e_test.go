package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/kprobe/kprobe/api/frontdoor/sshtest"
	"github.com/kprobe/kprobe/api/server"
	"github.com/kprobe/kprobe/api/server/servertest"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/graphstore/neo4j"
	"github.com/kprobe/kprobe/pipeline/investigate/investigatetest"
)

// apiForSSH serves the fixture incident on an API that wants token.
func apiForSSH(t *testing.T, token string) string {
	t.Helper()
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return servertest.Serve(t, server.Options{Service: investigatetest.New(20)}, server.ListenConfig{TokenFile: tokens}).Addr()
}

// TestSSHCommand: `kprobe-agent ssh` in front of an API; an SSH client with a known key and
// a pty gets the workstation's start screen, an unknown key is refused, and a wrong API
// token stops the command at start in one line.
func TestSSHCommand(t *testing.T) {
	const token = "e2e-ssh-token-0123456789"
	api := apiForSSH(t, token)
	dir := t.TempDir()
	known := sshtest.NewKey(t)
	keys := filepath.Join(dir, "authorized_keys")
	sshtest.WriteAuthorizedKeys(t, keys, known)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(e2eFreePort(t))
	p := e2eStart(t, "kprobe-agent ssh", agent(t), "ssh", "--listen", addr, "--authorized-keys", keys,
		"--host-key", filepath.Join(dir, "host_key"), "--api", api, "--api-token-file", tokenFile)
	p.waitOutput(t, "serving the workstation over SSH", 3*time.Minute)

	term := sshtest.Open(t, addr, known)
	term.Screen.WaitFor(t, "slowest settlements", investigatetest.Incident)
	if _, err := term.Stdin.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	term.Wait(t, 2*time.Minute)

	if c, err := gossh.Dial("tcp", addr, sshtest.Config(gossh.PublicKeys(sshtest.NewKey(t)))); err == nil {
		c.Close()
		t.Error("an unknown key got in")
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t, 2*time.Minute); err != nil {
		t.Errorf("ssh after SIGINT: %v\n%s", err, p.out.String())
	}

	// A wrong token: the command says so at once, in one line, naming the fix.
	bad := filepath.Join(dir, "bad-token")
	os.WriteFile(bad, []byte("not-the-token-0123456789\n"), 0o600)
	q := e2eStart(t, "kprobe-agent ssh (bad token)", agent(t), "ssh", "--listen", "127.0.0.1:"+strconv.Itoa(e2eFreePort(t)),
		"--authorized-keys", keys, "--host-key", filepath.Join(dir, "host_key"), "--api", api, "--api-token-file", bad)
	if err := q.wait(t, 2*time.Minute); err == nil {
		t.Fatal("ssh started with a wrong API token")
	}
	out := strings.TrimSpace(q.out.String())
	if strings.Count(out, "\n") != 0 || !strings.Contains(out, "KPROBE_API_TOKEN") {
		t.Errorf("wrong token: want one line naming KPROBE_API_TOKEN, got:\n%s", out)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("the first server still listens after SIGINT")
	}
}

// TestSSHCommandOverData: on one machine, `kprobe-agent ssh --data DIR` serves the
// workstation over the embedded stores standalone writes, without an API server in front:
// the recorded incident's slowest settlement is on the start screen.
func TestSSHCommandOverData(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the embedded ClickHouse engine (-short)")
	}
	if _, err := os.Stat(eventlog.LibraryPath()); err != nil {
		t.Skipf("embedded ClickHouse engine not found at %s: run scripts/chdb/fetch.sh", eventlog.LibraryPath())
	}
	// The chains come from the graph under the directory, not from make test's Neo4j.
	t.Setenv(neo4j.EnvURI, "")
	tui, _ := e2eTools(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	imp := e2eStart(t, "kprobe-tui import", tui, "import", "--data", data, "../../testdata/demo/incident-slow-storage.kpds")
	if err := imp.wait(t, 5*time.Minute); err != nil {
		t.Fatalf("import: %v\n%s", err, imp.out.String())
	}
	known := sshtest.NewKey(t)
	keys := filepath.Join(dir, "authorized_keys")
	sshtest.WriteAuthorizedKeys(t, keys, known)
	addr := "127.0.0.1:" + strconv.Itoa(e2eFreePort(t))
	p := e2eStart(t, "kprobe-agent ssh --data", agent(t), "ssh", "--listen", addr, "--authorized-keys", keys,
		"--host-key", filepath.Join(dir, "host_key"), "--data", data)
	p.waitOutput(t, "serving the workstation over SSH", 3*time.Minute)

	term := sshtest.Open(t, addr, known)
	term.Screen.WaitFor(t, "slowest settlements", "4821")
	if _, err := term.Stdin.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	term.Wait(t, 2*time.Minute)
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t, 2*time.Minute); err != nil {
		t.Errorf("ssh after SIGINT: %v\n%s", err, p.out.String())
	}
}
