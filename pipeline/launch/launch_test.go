package launch

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary is the launcher too, as a command's binary is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		if err := Exec(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "launch:", err)
		}
		os.Exit(127)
	}
	os.Exit(m.Run())
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procComm is the kernel's name of pid.
func procComm(pid uint32) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// TestHeldUntilRelease: the program runs only after Release, under the pid Start gave.
func TestHeldUntilRelease(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "pid")
	var stderr bytes.Buffer
	h, err := Start(context.Background(), []string{"sh", "-c", `echo $$ > "$0"`, out}, Options{Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	// Held: the launcher is alive under its own name, and the program has not run.
	waitFor(t, "the launcher to be running", func() bool { return procComm(h.PID()) == h.comm })
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the program ran before its release: %v", err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(); err != nil {
		t.Fatalf("program: %v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the program did not run: %v", err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(int(h.PID())) {
		t.Errorf("program ran as pid %s, held as %d", got, h.PID())
	}
}

// TestAbort: a program never released never runs, and its launcher says why.
func TestAbort(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ran")
	var stderr bytes.Buffer
	h, err := Start(context.Background(), []string{"touch", out}, Options{Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	h.Abort()
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("an aborted program ran: %v", err)
	}
	if want := `recorder went away before "touch" started`; !strings.Contains(stderr.String(), want) {
		t.Errorf("launcher said %q, want %q", stderr.String(), want)
	}
	if code := h.cmd.ProcessState.ExitCode(); code != 127 {
		t.Errorf("aborted launcher exited %d, want 127", code)
	}
}

func TestStartErrors(t *testing.T) {
	for _, argv := range [][]string{nil, {"/nonexistent/kprobe-launch-test"}, {"no-such-command-kprobe"}} {
		if h, err := Start(context.Background(), argv, Options{}); err == nil {
			h.Abort()
			t.Errorf("Start(%q) succeeded", argv)
		}
	}
}

func TestSkipUntilExec(t *testing.T) {
	h := &Held{cmd: &exec.Cmd{Process: &os.Process{Pid: 7}}, comm: "kprobe-agent"}
	skip := h.Skip()
	steps := []struct {
		pid  uint32
		comm string
		skip bool
	}{
		{8, "kprobe-agent", false}, // another process
		{7, "kprobe-agent", true},  // the launcher, before exec
		{7, "dd", false},           // the exec'd command
		{7, "kprobe-agent", false}, // after exec: the command's, whatever its name
	}
	for i, s := range steps {
		if got := skip(s.pid, s.comm); got != s.skip {
			t.Errorf("step %d (%+v): skipped = %v, want %v", i, s, got, s.skip)
		}
	}
	// Another stream has its own order.
	if !h.Skip()(7, "kprobe-agent") {
		t.Error("a new predicate did not skip the launcher")
	}
}

func TestComm(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/kprobe-agent":              "kprobe-agent",
		"/tmp/x/a-very-long-binary-name-123": "a-very-long-bin",
	} {
		if got := comm(in); got != want {
			t.Errorf("comm(%q) = %q, want %q", in, got, want)
		}
	}
}
