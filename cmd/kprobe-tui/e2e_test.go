package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sessions counts the tmux sessions this test binary started (their names are unique).
var sessions int

// terminal is the workstation running in a real terminal (tmux), driven by keys and read
// from the screen.
type terminal struct {
	t       *testing.T
	session string
}

func newTerminal(t *testing.T, w, h int, dir, command string) *terminal {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed")
	}
	sessions++
	tm := &terminal{t: t, session: fmt.Sprintf("kprobe-e2e-%d-%d", os.Getpid(), sessions)}
	// remain-on-exit keeps the pane after the program quits, to read what it left.
	tm.tmux("new-session", "-d", "-s", tm.session, "-x", fmt.Sprint(w), "-y", fmt.Sprint(h), "-c", dir,
		"env", "TERM=xterm-256color", "sh", "-c", command)
	tm.tmux("set-option", "-t", tm.session, "remain-on-exit", "on")
	t.Cleanup(func() { exec.Command("tmux", "kill-session", "-t", tm.session).Run() })
	return tm
}

func (tm *terminal) tmux(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", args...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (tm *terminal) screen() string { return tm.tmux("capture-pane", "-p", "-t", tm.session) }

// keys types keys as tmux names them ("Enter", "Escape", "4821").
func (tm *terminal) keys(keys ...string) {
	tm.tmux(append([]string{"send-keys", "-t", tm.session}, keys...)...)
}

// waitFor polls the screen until it shows every text (the terminal gives no other signal).
func (tm *terminal) waitFor(texts ...string) string {
	tm.t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // a bound for failure only
	for {
		s := tm.screen()
		ok := true
		for _, x := range texts {
			ok = ok && strings.Contains(s, x)
		}
		if ok {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("the screen never showed %q:\n%s", texts, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitExit waits for the workstation to exit (the shell around it writes its status to
// exitFile), wants status 0 and the terminal given back: the alternate screen gone.
func (tm *terminal) waitExit(exitFile string) {
	tm.t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a bound for failure only
	var status []byte
	for {
		if b, err := os.ReadFile(exitFile); err == nil && len(b) > 0 {
			status = b
			break
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("the workstation did not exit after q:\n%s", tm.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.TrimSpace(string(status)) != "0" {
		tm.t.Errorf("exit status %q, want 0", status)
	}
	if s := tm.screen(); strings.Contains(s, "kprobe chain") || strings.Contains(s, "slowest settlements") {
		tm.t.Errorf("the terminal was not restored after q:\n%s", s)
	}
}

// exportAndQuit, on the chain of a settlement, writes its report with e, quits with q and
// returns the report.
func (tm *terminal) exportAndQuit(settlement, exportDir, exitFile string) string {
	tm.t.Helper()
	tm.waitFor("chain · settlement " + settlement)
	tm.keys("e")
	report := filepath.Join(exportDir, "incident-settlement-"+settlement+".md")
	tm.waitFor("report written: " + report[:min(len(report), 80)])
	tm.keys("q")
	tm.waitExit(exitFile)
	md, err := os.ReadFile(report)
	if err != nil {
		tm.t.Fatal(err)
	}
	return string(md)
}

// TestWorkstationInATerminal drives the workstation binary in tmux the way an SRE does:
// type a settlement ID, drill from its chain to the kernel events, filter them, start a
// replay with a tweak, export the report, quit; then checks the terminal was given back
// and the report (with the replay experiment) is on disk.
// The data comes through the API (an in-process server over an incident held in memory,
// with 500 events behind its first cause); its process has no flight recording, so the
// replay is refused in one line. TestWorkstationOnARecordedIncident is the same flow on
// the embedded event log of a real recording, with replays that run.
func TestWorkstationInATerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs tmux")
	}
	bin := bins(t)
	addr := serveAPI(t, 500)

	dir := t.TempDir()
	exitFile := filepath.Join(dir, "exit-status")
	cmd := fmt.Sprintf("%s --api %s --export-dir %s --refresh 0 --replay-program /bin/true; echo $? > %s",
		filepath.Join(bin, "kprobe-tui"), addr, dir, exitFile)
	tm := newTerminal(t, 100, 30, dir, cmd)

	tm.waitFor("slowest settlements (24)", "4821")
	tm.keys("4821")
	tm.waitFor("open: 4821")
	tm.keys("Enter")
	tm.waitFor("chain · settlement 4821", "#1 storage", "#3 slow_peer")
	tm.keys("Down", "Enter") // the first cause
	tm.waitFor("events · cause #1 storage", "500 of 500 events", "★ 3 evidence")
	tm.keys("/", "type=write", "Enter")
	tm.waitFor("filter type=write")
	tm.keys("Enter")
	tm.waitFor("event id")
	tm.keys("Escape")
	tm.waitFor("chain · settlement 4821")
	// A replay with a tweak, on the real engine. The incident held in memory has no
	// flight-recorder syscalls, so the engine refuses it: the run says why in one line.
	tm.keys("r")
	tm.replayForm("/bin/true", "write 200ms", "")
	tm.waitFor("run 1 of 1", "syscall=write,delay=200ms", "did not finish: replay: no flight-recorder events for pid 4242")
	tm.keys("c")
	tm.waitFor("production", "run 1", "failed")
	tm.keys("Escape")
	md := tm.exportAndQuit("4821", dir, exitFile)
	for _, want := range []string{"# Incident report: settlement 4821", "### Cause #1: storage",
		"`syscall=write,delay=200ms`", "Run 1 did not finish: replay: no flight-recorder events for pid 4242",
		"kprobe-tui --api " + addr + " --settlement 4821"} {
		if !strings.Contains(md, want) {
			t.Errorf("the exported report lacks %q", want)
		}
	}
}
