package main

// End-to-end tests of how the agent starts, stops and dies: a requested stop is a
// success, and a killed agent takes its recorded command with it.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// standaloneArgs are the flags that make `standalone` stand alone in a test: no OTLP listeners.
var standaloneArgs = []string{"--otlp-grpc", "", "--otlp-http", ""}

// agentCommand is `kprobe-agent <sub> [--data DIR] args...`; standalone gets a data
// directory under dir.
func agentCommand(t *testing.T, sub, dir string, args ...string) *exec.Cmd {
	t.Helper()
	argv := []string{sub}
	if sub == "standalone" {
		argv = append(argv, "--data", filepath.Join(dir, "data"))
		argv = append(argv, standaloneArgs...)
	} else {
		argv = append(argv, "--output", filepath.Join(dir, "events.jsonl"))
	}
	cmd := exec.Command(agent(t), append(argv, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// outFile is where an agent's output goes: a file, not a pipe, so that waiting for the
// agent never waits on a recorded command that outlives it and holds the pipe.
type outFile struct{ f *os.File }

func newOutFile(t *testing.T) outFile {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "agent.out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return outFile{f}
}

func (o outFile) String() string {
	b, _ := os.ReadFile(o.f.Name())
	return string(b)
}

// waitPIDFile waits until the recorded command has written its pid to path.
func waitPIDFile(t *testing.T, path string, agent *exec.Cmd, out outFile) int {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		b, err := os.ReadFile(path)
		if err == nil && bytes.HasSuffix(b, []byte("\n")) {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("pid file %q: %v", b, err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("the recorded command did not start within 3 minutes:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive says whether pid runs: a zombie (dead, its new parent has not reaped it yet) does
// not.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return (err == nil || errors.Is(err, syscall.EPERM)) && procState(pid) != "Z"
}

// procState is the state letter of pid in /proc ("S", "R", "Z"...), "" if it is gone.
func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+3 <= len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

// TestRecordedCommandDiesWithAgent: when the agent is killed (kill -9, an OOM kill), the
// command it started and records dies too, instead of running on unrecorded.
func TestRecordedCommandDiesWithAgent(t *testing.T) {
	needRoot(t)
	for _, sub := range []string{"record", "standalone"} {
		t.Run(sub, func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "pid")
			cmd := agentCommand(t, sub, dir, "--", "sh", "-c", "echo $$ > "+pidFile+"; exec sleep 1000")
			out := newOutFile(t)
			cmd.Stdout, cmd.Stderr = out.f, out.f
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			child := waitPIDFile(t, pidFile, cmd, out)
			t.Cleanup(func() {
				if alive(child) {
					syscall.Kill(child, syscall.SIGKILL)
				}
			})
			if !alive(child) {
				t.Fatalf("recorded command (pid %d) not running before the kill", child)
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-waited
			deadline := time.Now().Add(10 * time.Second)
			for alive(child) {
				if time.Now().After(deadline) {
					b, _ := os.ReadFile("/proc/" + strconv.Itoa(child) + "/status")
					t.Fatalf("recorded command (pid %d) still runs 10 s after its agent was killed:\n%.400s\nagent output:\n%s", child, b, out.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestRequestedStopSucceeds: a stop that was asked for (--duration, SIGTERM, SIGINT) ends
// the recorded command and exits 0 with the summary; a command that fails by itself makes
// the agent fail with the command's own status.
func TestRequestedStopSucceeds(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name     string
		sub      string
		args     []string
		signal   syscall.Signal // sent once the command runs; 0: none
		wantCode int
		wantOut  string
	}{
		{"record --duration", "record", []string{"--duration", "2s"}, 0, 0, "recorded "},
		{"record SIGTERM", "record", nil, syscall.SIGTERM, 0, "recorded "},
		{"record SIGINT", "record", nil, syscall.SIGINT, 0, "recorded "},
		{"standalone --duration", "standalone", []string{"--duration", "2s"}, 0, 0, "engine: "},
		{"standalone SIGTERM", "standalone", nil, syscall.SIGTERM, 0, "engine: "},
		{"record, command fails", "record", []string{"--fail"}, 0, 3, "recorded command: exit status 3"},
		{"standalone, command fails", "standalone", []string{"--fail"}, 0, 3, "recorded command: exit status 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "pid")
			script := "echo $$ > " + pidFile + "; exec sleep 1000"
			args := tt.args
			if len(args) == 1 && args[0] == "--fail" {
				script, args = "echo $$ > "+pidFile+"; exit 3", nil
			}
			cmd := agentCommand(t, tt.sub, dir, append(args, "--", "sh", "-c", script)...)
			out := newOutFile(t)
			cmd.Stdout, cmd.Stderr = out.f, out.f
			begin := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
			if tt.signal != 0 {
				waitPIDFile(t, pidFile, cmd, out)
				if err := cmd.Process.Signal(tt.signal); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			select {
			case err = <-waited:
			case <-time.After(3 * time.Minute):
				t.Fatalf("agent still running 3 minutes after it started:\n%s", out.String())
			}
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("exit %d after %v, want %d and %q in the output:\n%s", code, time.Since(begin).Round(time.Millisecond),
					tt.wantCode, tt.wantOut, out.String())
			}
			if tt.wantCode == 0 && strings.Contains(out.String(), "signal: ") {
				t.Errorf("a requested stop reported as the command's failure:\n%s", out.String())
			}
		})
	}
}
