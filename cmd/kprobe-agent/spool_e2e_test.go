package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSpoolLeftoversRecovered kills standalone (kill -9) while it inserts a busy
// recording, until a kill leaves spool files behind; the next start inserts or removes
// them, and the events stay readable.
func TestSpoolLeftoversRecovered(t *testing.T) {
	needRoot(t)
	tui, _ := e2eTools(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	spool := filepath.Join(data, "events", "kprobe-spool")
	work := exec.Command("sh", "-c", "while :; do echo x > /dev/null; done")
	if err := work.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { work.Process.Kill(); work.Wait() }()
	leftovers := func() []string {
		names, _ := filepath.Glob(filepath.Join(spool, "insert-*"))
		return names
	}

	var left []string
	for attempt := 1; len(left) == 0; attempt++ {
		if attempt > 5 {
			t.Fatalf("5 kills during inserts left no spool file: nothing to recover")
		}
		cmd := agentCommand(t, "standalone", dir, "--pid", strconv.Itoa(work.Process.Pid))
		out := newOutFile(t)
		cmd.Stdout, cmd.Stderr = out.f, out.f
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it the moment an insert is staged.
		deadline := time.Now().Add(2 * time.Minute)
		for len(leftovers()) == 0 {
			if time.Now().After(deadline) {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				cmd.Wait()
				t.Fatalf("no insert staged within 2 minutes:\n%s", out.String())
			}
			time.Sleep(time.Millisecond)
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		left = leftovers()
	}
	t.Logf("left by the kill: %v", left)

	out, err := exec.Command(agent(t), append([]string{"standalone", "--data", data, "--log-level", "info", "--duration", "1s",
		"--pid", strconv.Itoa(work.Process.Pid)}, standaloneArgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("restart: %v\n%s", err, out)
	}
	if got := leftovers(); len(got) != 0 {
		t.Errorf("spool files still there after a restart: %v\n%s", got, out)
	}
	if !strings.Contains(string(out), "spool file left by an earlier run") {
		t.Errorf("the restart did not say what it did with the spool files:\n%s", out)
	}
	read, err := exec.Command(tui, "events", "--data", data, "--from", "1", "--format", "jsonl").CombinedOutput()
	if err != nil {
		t.Fatalf("reading the event log: %v\n%.2000s", err, read)
	}
	if n := strings.Count(string(read), "\n"); n == 0 {
		t.Errorf("no events read back after the recovery")
	}
	if _, err := os.Stat(spool); err != nil {
		t.Errorf("spool directory: %v", err)
	}
}
