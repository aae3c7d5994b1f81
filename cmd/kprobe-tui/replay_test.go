package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReplayCommand is the whole path on the embedded default: the C client is recorded
// by 'kprobe-agent standalone --flight-recorder' into the event log, then 'kprobe-tui
// replay' runs it again with its peer gone and its rate file changed. It prints, fails
// and exits as in production; a changed build is stopped at its divergent write with the
// documented line and status; --trace writes the served syscalls.
func TestReplayCommand(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("records with eBPF and replays under ptrace: needs root, not in -short")
	}
	bin := bins(t)
	dir := t.TempDir()
	client := filepath.Join(dir, "client")
	changed := filepath.Join(dir, "client-changed")
	for _, b := range []struct {
		out  string
		args []string
	}{{client, nil}, {changed, []string{"-DCHANGED"}}} {
		args := append([]string{"-O2", "-o", b.out}, b.args...)
		if out, err := exec.Command("cc", append(args, "../../replay/testdata/client.c")...).CombinedOutput(); err != nil {
			t.Fatalf("compiling the client: %v\n%s", err, out)
		}
	}
	rates := filepath.Join(dir, "rates.txt")
	os.WriteFile(rates, []byte("1.25\n"), 0o644)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write([]byte("amount=120\n"))
		if line, err := bufio.NewReader(c).ReadString('\n'); err == nil && strings.HasPrefix(line, "result=") {
			c.Write([]byte("ok\n"))
		}
	}()
	host, port, _ := strings.Cut(ln.Addr().String(), ":")
	prog := []string{client, host, port, rates}

	data := filepath.Join(dir, "data")
	rec := exec.Command(filepath.Join(bin, "kprobe-agent"), append([]string{"standalone", "--data", data,
		"--flight-recorder", "--otlp-grpc", "", "--otlp-http", "", "--"}, prog...)...)
	var prodOut, prodErr bytes.Buffer
	rec.Stdout, rec.Stderr = &prodOut, &prodErr
	if err := rec.Run(); err != nil {
		t.Fatalf("standalone --flight-recorder: %v\n%s", err, prodErr.String())
	}
	ln.Close() // the peer is gone
	os.WriteFile(rates, []byte("9.99\n"), 0o644)
	// (standalone passes the command's output on its own stderr)
	if !strings.Contains(prodErr.String(), "settled amount=120 result=150.00") {
		t.Fatalf("production printed %q", prodErr.String())
	}
	pid := recordedPID(t, bin, data, "client")

	run := func(t *testing.T, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "kprobe-tui"), append([]string{"replay", "--data", data, "--pid", pid}, args...)...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return o.String(), e.String(), cmd.ProcessState.ExitCode()
	}

	t.Run("as in production", func(t *testing.T) {
		trace := filepath.Join(dir, "trace.jsonl")
		stdout, stderr, code := run(t, append([]string{"--trace", trace, "--"}, prog...)...)
		// The program's own stdout; stderr holds only the replay's "replay:" lines (the
		// client wrote nothing to stderr in production).
		if stdout != "settled amount=120 result=150.00\n" || code != 0 {
			t.Errorf("replay: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
		}
		for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
			if !strings.HasPrefix(line, "replay: ") {
				t.Errorf("a stderr line not from the program and not marked replay: %q", line)
			}
		}
		served := map[string]int{}
		f, err := os.Open(trace)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r struct{ Syscall, Kind string }
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("bad --trace line %q: %v", sc.Text(), err)
			}
			if r.Kind == "served" {
				served[r.Syscall]++
			}
		}
		for _, sc := range []string{"connect", "openat", "read", "write"} {
			if served[sc] == 0 {
				t.Errorf("--trace has no served %s: %v", sc, served)
			}
		}
	})

	t.Run("a changed build diverges", func(t *testing.T) {
		stdout, stderr, code := run(t, append([]string{"--"}, append([]string{changed}, prog[1:]...)...)...)
		line := regexp.MustCompile(`(?m)^replay: divergence at syscall #\d+ \(tid \d+\): recorded write\(3 \[socket 127\.0\.0\.1:` + port + `\], "result=150\.00\\n"\) = 14, program write\(3, "result=150\.000\\n", 15\)$`)
		if code != DivergenceExit || !line.MatchString(stderr) || stdout != "" {
			t.Errorf("exit %d (want %d), stdout %q, stderr:\n%s", code, DivergenceExit, stdout, stderr)
		}
	})

	t.Run("a bad tweak is one line", func(t *testing.T) {
		_, stderr, code := run(t, "--tweak", "syscall=wrte,delay=1s", "--", client)
		if code != 1 || stderr != "replay: tweak \"syscall=wrte,delay=1s\": syscall=wrte: unknown syscall \"wrte\" (did you mean write?)\n" {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})

	// A recorder killed with SIGKILL leaves its API socket behind: nothing answers
	// there, and the replay reads the store itself.
	t.Run("after the recorder died", func(t *testing.T) {
		sock := filepath.Join(data, "api.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
		defer os.Remove(sock)
		if _, err := os.Stat(sock); err != nil {
			t.Fatalf("no stale socket to test with: %v", err)
		}
		stdout, stderr, code := run(t, append([]string{"--"}, prog...)...)
		if stdout != "settled amount=120 result=150.00\n" || code != 0 {
			t.Errorf("replay beside a stale socket: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
		}
	})
}

// recordedPID finds the process of that comm among the flight recorder's events.
func recordedPID(t *testing.T, bin, data, comm string) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a bound for failure only
	for {
		out, err := exec.Command(filepath.Join(bin, "kprobe-tui"), "events", "--data", data, "--type", "syscall", "--from", "1", "--limit", "50").Output()
		if err == nil {
			sc := bufio.NewScanner(bytes.NewReader(out))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var e struct {
					Comm string
					PID  float64
				}
				if json.Unmarshal(sc.Bytes(), &e) == nil && e.Comm == comm {
					return strconv.Itoa(int(e.PID))
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no syscall event of %s in %s (%v)", comm, data, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
