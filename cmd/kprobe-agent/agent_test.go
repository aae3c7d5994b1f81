package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	agentBin  string
	buildErr  error
)

// raceBuild is set (race_test.go) when the tests run under the race detector: the binaries
// they start are then built with it too, so a race in the commands fails their tests.
var raceBuild bool

// goBuild is the go command line that builds the binaries the tests run.
func goBuild() []string {
	if raceBuild {
		return []string{"build", "-race"}
	}
	return []string{"build"}
}

// agent builds kprobe-agent once per test binary.
func agent(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kprobe-agent-test")
		if err != nil {
			buildErr = err
			return
		}
		agentBin = filepath.Join(dir, "kprobe-agent")
		out, err := exec.Command("go", append(goBuild(), "-o", agentBin, ".")...).CombinedOutput()
		if err != nil {
			buildErr = err
			agentBin = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building kprobe-agent: %v\n%s", buildErr, agentBin)
	}
	return agentBin
}

func needRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("records the kernel: not in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs")
	}
}

func readJSONL(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad jsonl line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestRecordCommand records dd from its first instruction through the launcher and
// checks the jsonl contract: exact counts, fds, bytes, times inside the run.
func TestRecordCommand(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "events.jsonl")
	const blocks, size = 64, 4096
	start := time.Now().UnixNano()
	cmd := exec.Command(agent(t), "record", "--output", out, "--",
		"dd", "if=/dev/zero", "of="+filepath.Join(dir, "data"), "bs=4096", "count=64", "status=none")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("record: %v\n%s", err, stderr.String())
	}
	end := time.Now().UnixNano()
	evs := readJSONL(t, out)
	var reads, writes int
	pids := map[float64]bool{}
	for _, e := range evs {
		for _, k := range []string{"ts_ns", "pid", "tid", "cpu", "comm", "type", "dur_ns"} {
			if _, ok := e[k]; !ok {
				t.Fatalf("event without %q: %v", k, e)
			}
		}
		pids[e["pid"].(float64)] = true
		ts := int64(e["ts_ns"].(float64))
		if ts < start || ts > end {
			t.Errorf("event at %d outside the run [%d, %d]: %v", ts, start, end, e)
		}
		if e["comm"] != "dd" {
			continue
		}
		switch {
		case e["type"] == "read" && e["fd"] == 0.0 && e["bytes"] == float64(size):
			reads++
		case e["type"] == "write" && e["fd"] == 1.0 && e["bytes"] == float64(size):
			writes++
			if e["dur_ns"].(float64) <= 0 {
				t.Errorf("write without duration: %v", e)
			}
		}
	}
	if reads != blocks || writes != blocks {
		t.Errorf("dd: %d reads and %d writes of %d bytes, want %d each\nrecorder said:\n%s", reads, writes, size, blocks, stderr.String())
	}
	for _, e := range evs {
		if e["comm"] != "dd" {
			t.Errorf("event of %q: only dd's own events belong in the recording (the launcher's are skipped): %v", e["comm"], e)
			break
		}
	}
	if len(pids) != 1 {
		t.Errorf("events from %d processes, want only the launched one: %v", len(pids), pids)
	}
	summary := stderr.String()
	for _, want := range []string{"recorded ", "write=", "lost: kernel=0 ", "userspace=0", "attached tcp_sendmsg via ", "attached sched_switch via "} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
}

// TestRecordFlightRecorder records a command with the flight recorder: its open carries
// the path, its read the file's bytes, and the output is the owner's alone.
func TestRecordFlightRecorder(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	input := filepath.Join(dir, "request.txt")
	content := strings.Repeat("PAY-98721 ", 3000) // 30 KB: two chunks
	if err := os.WriteFile(input, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "events.jsonl")
	cmd := exec.Command(agent(t), "record", "--flight-recorder", "--output", out, "--", "cat", input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("record: %v\n%s", err, stderr.String())
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("output mode %v (%v), want 0600: it holds the program's bytes", fi.Mode().Perm(), err)
	}
	var fd float64 = -1
	var read []byte
	for _, e := range readJSONL(t, out) {
		if e["type"] != "syscall" {
			continue
		}
		if e["comm"] != "cat" {
			t.Fatalf("flight event of %q: only the command's own belong in the recording: %v", e["comm"], e)
		}
		switch {
		case e["syscall"] == "openat" && e["path"] == input:
			fd = e["bytes"].(float64)
		case e["syscall"] == "read" && e["fd"] == fd && e["payload"] != nil:
			b, err := base64.StdEncoding.DecodeString(e["payload"].(string))
			if err != nil {
				t.Fatal(err)
			}
			read = append(read, b...)
		}
	}
	if fd < 0 {
		t.Fatalf("no openat of %s in the flight recording\n%s", input, stderr.String())
	}
	if string(read) != content {
		t.Errorf("reads of fd %v carried %d bytes, want the file's %d", fd, len(read), len(content))
	}
	if !strings.Contains(stderr.String(), "flight recorder: calls=") || !strings.Contains(stderr.String(), "lost_calls=0 ") {
		t.Errorf("summary lacks the flight recorder's counters:\n%s", stderr.String())
	}
}

// TestRecordPIDDuration records an already running process for a fixed time.
func TestRecordPIDDuration(t *testing.T) {
	needRoot(t)
	sleeper := exec.Command("sh", "-c", "while :; do echo x > /dev/null; sleep 0.05; done")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	out := filepath.Join(t.TempDir(), "e.jsonl")
	begin := time.Now()
	cmd := exec.Command(agent(t), "record", "--pid", strconv.Itoa(sleeper.Process.Pid), "--duration", "1500ms", "--output", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("record: %v\n%s", err, b)
	}
	// --duration counts from the attach, and loading the probes takes seconds on a busy
	// machine (more with the race detector): the upper bound only proves it stops by itself.
	if took := time.Since(begin); took < 1500*time.Millisecond || took > 3*time.Minute {
		t.Errorf("--duration 1500ms ran %v", took)
	}
	evs := readJSONL(t, out)
	var writes, switches int
	children := map[float64]bool{}
	for _, e := range evs {
		if e["pid"] != float64(sleeper.Process.Pid) {
			// The shell's children (a fork that execs sleep) are recorded with it; nothing else.
			if e["comm"] != "sh" && e["comm"] != "sleep" {
				t.Fatalf("event of another process: %v", e)
			}
			children[e["pid"].(float64)] = true
			continue
		}
		switch e["type"] {
		case "write":
			writes++
		case "sched_switch":
			switches++
		}
	}
	// The shell writes (echo) ~20 times a second and blocks in wait() for each sleep.
	if writes < 5 || switches < 5 {
		t.Errorf("%d writes and %d sched_switch events of the shell in 1.5 s, want several of each", writes, switches)
	}
	// ~30 sleeps started in 1.5 s, each blocking 50 ms: --pid follows what the shell starts.
	if len(children) < 5 {
		t.Errorf("events of %d of the shell's sleep children in 1.5 s, want several", len(children))
	}
}

// TestRecordSaysNothingMatched: a selection that matches nothing (a misspelt --comm) is
// said to have matched nothing, rather than looking like a quiet service.
func TestRecordSaysNothingMatched(t *testing.T) {
	needRoot(t)
	out, err := exec.Command(agent(t), "record", "--comm", "kp-no-such-cmd", "--duration", "300ms", "--output", filepath.Join(t.TempDir(), "e.jsonl")).CombinedOutput()
	if err != nil {
		t.Fatalf("record: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "recorded 0 events") || !strings.Contains(string(out), "nothing matched --comm kp-no-such-cmd while recording") {
		t.Errorf("record --comm of no process said:\n%s", out)
	}
}

func TestRecordFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"record", "--pid", "abc"}, `--pid "abc": want a positive process id`},
		{[]string{"record", "--pid", "0"}, `--pid "0"`},
		{[]string{"record", "--format", "xml"}, `--format "xml": only jsonl`},
		{[]string{"record", "--comm", "a-very-long-command-name"}, "only 15 bytes"},
		{[]string{"record", "--duration", "-1s"}, "must not be negative"},
		{[]string{"record", "--payload-bytes", "100000"}, "--payload-bytes 100000"},
		{[]string{"record", "--flight-recorder"}, "--flight-recorder records selected processes only"},
		{[]string{"record", "--flight-recorder", "--pid", "1", "--payload-bytes", "2000000"}, "must be between 0 and 1048576"},
		{[]string{"record", "--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"record", "--ring-mib", "24"}, "--ring-mib 24: must be a power of two"},
		{[]string{"record", "--buffer-mib", "0"}, "--buffer-mib 0: must be at least 1"},
		{[]string{"record", "--output", "x", "--kafka", "y:1"}, "--output or --kafka, not both"},
		{[]string{"bogus"}, `unknown command "bogus" (kprobe-agent help lists them)`},
		{[]string{"standalone"}, "--data DIR is required"},
		{[]string{"engine"}, "--kafka BROKERS is required"},
		{[]string{"engine", "--kafka", "x:1"}, "exactly one of --clickhouse ADDR or --data DIR"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv("KPROBE_KAFKA_BROKERS", "")
			var out, errb bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestRecordExplainsProblems: missing privileges and bad selections end in one line that
// names the problem and the fix, with nothing half-attached left behind.
func TestRecordExplainsProblems(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatalf("setpriv (util-linux) is needed to drop privileges: %v", err)
	}
	tests := []struct {
		name string
		argv []string
		want string
	}{
		{"unprivileged", []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
			agent(t), "record", "--pid", "1", "--duration", "1s", "--output", "/dev/null"}, "run as root or grant CAP_BPF+CAP_PERFMON"},
		{"no such cgroup", []string{agent(t), "record", "--cgroup", "/sys/fs/cgroup/no-such-group", "--duration", "1s"}, "no-such-group"},
		{"unwritable output", []string{agent(t), "record", "--pid", "1", "--output", "/proc/no/such/file"}, "opening output"},
		{"missing command", []string{agent(t), "record", "--", "no-such-command-kprobe"}, `command "no-such-command-kprobe"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(tt.argv[0], tt.argv[1:]...).CombinedOutput()
			if err == nil {
				t.Fatalf("succeeded, want an error:\n%s", out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "kprobe-agent: ") || !strings.Contains(last, tt.want) {
				t.Errorf("last line %q, want a kprobe-agent error containing %q\nfull output:\n%s", last, tt.want, out)
			}
		})
	}
}
