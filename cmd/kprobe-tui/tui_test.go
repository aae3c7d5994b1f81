package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// TestMain removes the binaries bins built (about 100 MB a run) once the tests are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if binErr == nil && binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

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

// bins builds kprobe-agent, kprobe-demo and this command once per test binary.
func bins(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "kprobe-tui-test")
		if binErr != nil {
			return
		}
		out, err := exec.Command("go", append(goBuild(), "-o", binDir+"/", "../kprobe-agent", "../kprobe-demo", ".")...).CombinedOutput()
		if err != nil {
			binErr = err
			binDir = string(out)
		}
	})
	if binErr != nil {
		t.Fatalf("building binaries: %v\n%s", binErr, binDir)
	}
	return binDir
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func tui(t *testing.T, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bins(t), "kprobe-tui"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kprobe-tui %v: %v\n%s", args, err, errb.String())
	}
	return out.String(), errb.String()
}

// TestRecordedIncident records the demo service on the embedded default with a
// slow-storage incident on settlement 4821, then investigates it as an SRE would.
func TestRecordedIncident(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs (and not -short)")
	}
	dir := t.TempDir()
	port := freePort(t)
	bin := bins(t)
	rec := exec.Command(filepath.Join(bin, "kprobe-agent"), "standalone", "--data", dir,
		"--otlp-grpc", "127.0.0.1:"+port, "--otlp-http", "", "--",
		filepath.Join(bin, "kprobe-demo"), "--otlp", "127.0.0.1:"+port, "--ledger", filepath.Join(dir, "ledger"),
		"--settlements", "10", "--first-settlement", "4815", "--incident", "slow-storage", "--incident-settlement", "4821")
	var stderr bytes.Buffer
	rec.Stderr = &stderr
	if err := rec.Run(); err != nil {
		t.Fatalf("standalone: %v\n%s", err, stderr.String())
	}
	summary := stderr.String()
	recorded := grab(t, summary, `recorded (\d+) events`)
	written := grab(t, summary, `written=(\d+)`)
	if recorded == 0 || recorded != written {
		t.Errorf("recorded %d events but the engine wrote %d:\n%s", recorded, written, summary)
	}
	if !strings.Contains(summary, "lost: kernel=0 ") || !strings.Contains(summary, "dropped=0") {
		t.Errorf("events were lost:\n%s", summary)
	}

	// The slowest settlement is the one the incident hit, with its kernel evidence.
	out, _ := tui(t, "settlements", "--data", dir, "--top", "3")
	first := strings.SplitN(out, "\n", 2)[0]
	if !strings.HasPrefix(first, "#1 settlement 4821 ") {
		t.Fatalf("slowest settlement is not 4821:\n%s", out)
	}
	if !strings.Contains(out, "#2 settlement ") || !strings.Contains(out, "kernel: ") {
		t.Errorf("settlements output lacks the runners-up or the kernel summary:\n%s", out)
	}

	// Every event of settlement 4821 carries its trace; the 256 KiB ledger writes of
	// the incident are among them.
	out, errOut := tui(t, "events", "--data", dir, "--settlement", "4821")
	var n, bigWrites int
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad jsonl %q: %v", sc.Text(), err)
		}
		n++
		if e["settlement.id"] != "4821" || e["trace_id"] == "" || e["join"] != "tid" {
			t.Fatalf("event not joined to settlement 4821 by thread: %v", e)
		}
		if e["type"] == "write" && e["bytes"] == float64(256<<10) {
			bigWrites++
		}
	}
	if n == 0 || bigWrites == 0 {
		t.Errorf("settlement 4821: %d events, %d ledger writes of 256 KiB; want both > 0", n, bigWrites)
	}
	if !strings.Contains(errOut, strconv.Itoa(n)+" events") {
		t.Errorf("stderr %q does not count the %d events", errOut, n)
	}

	// The store holds exactly what was recorded.
	out, _ = tui(t, "events", "--data", dir, "--from", "1")
	if lines := strings.Count(out, "\n"); uint64(lines) != recorded {
		t.Errorf("store holds %d events, recorded %d", lines, recorded)
	}
}

func grab(t *testing.T, s, re string) uint64 {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, s)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

func TestCommandErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nothing-here")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"events", "--pid", "1"}, "no data given: use --data DIR (the embedded default), --clickhouse ADDR or --api HOST:PORT"},
		{[]string{"events", "--data", missing, "--pid", "1"}, "no event log under " + missing + ": record one with 'kprobe-agent standalone"},
		{[]string{"events", "--data", "x", "--clickhouse", "y:1", "--pid", "1"}, "either --data or --clickhouse"},
		{[]string{"events", "--data", "x"}, "no selection"},
		{[]string{"events", "--data", "x", "--pid", "1", "--format", "xml"}, `--format "xml"`},
		{[]string{"events", "--data", "x", "--from", "yesterday"}, `--from "yesterday": want RFC 3339`},
		{[]string{"events", "--data", "x", "--type", "bogus", "--pid", "1"}, `unknown event type "bogus"`},
		{[]string{"events", "--data", "x", "--settlement", "1", "--payment", "2"}, "not both"},
		{[]string{"settlements", "--top", "0"}, "--top 0"},
		{[]string{"nope"}, `unknown command "nope"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Setenv("KPROBE_CLICKHOUSE_ADDR", "")
			t.Setenv("KPROBE_DATA", "")
			var out, errb bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"", 0},
		{"1700000000000000000", 1700000000000000000},
		{"2023-11-14T22:13:20Z", 1700000000000000000},
		{"2023-11-14T22:13:20.5Z", 1700000000500000000},
	}
	for _, tt := range tests {
		got, err := parseTime("from", tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseTime(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}
