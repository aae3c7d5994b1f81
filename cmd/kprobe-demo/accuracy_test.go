package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/investigate"
)

// Diagnosis accuracy, end to end: the demo service and its helper processes (gateway,
// bank, hog, reconciler) run in a cgroup recorded by the real eBPF agent on the embedded
// default (`kprobe-agent standalone --cgroup`); an incident is injected into settlement
// 4821; `kprobe-tui chain` must rank the injected kind first and name what the demo says
// it injected (the process that held the CPU, the lock or the reply; the file).
//
// KPROBE_ACCURACY_RUNS=N repeats every scenario N times and reports top-1 and top-3
// accuracy instead of failing on the first miss (scripts/accuracy.sh, BENCHMARKS.md).

var wantKind = map[string]string{
	incidentSlowStorage:    investigate.CauseStorage,
	incidentCPUHog:         investigate.CauseCPUContention,
	incidentMemoryPressure: investigate.CauseMemory,
	incidentSlowPeer:       investigate.CauseSlowPeer,
	incidentLock:           investigate.CauseLockContention,
}

func TestAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("records the kernel: not in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs")
	}
	runs := 1
	if v := os.Getenv("KPROBE_ACCURACY_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("KPROBE_ACCURACY_RUNS=%q: want a positive number", v)
		}
		runs = n
	}
	// The embedded default is what is judged here: a cluster's Neo4j named in the
	// environment (make test starts one) would take the chains away from --data.
	t.Setenv("KPROBE_NEO4J_URI", "")
	bin := accuracyBins(t)
	type score struct{ runs, top1, top3 int }
	scores := map[string]*score{}
	for run := range runs {
		for _, incident := range incidents[1:] {
			t.Run(fmt.Sprintf("%s/run%d", incident, run+1), func(t *testing.T) {
				s := scores[incident]
				if s == nil {
					s = &score{}
					scores[incident] = s
				}
				s.runs++ // a recording that fails counts as a miss
				ch, target, out := recordIncident(t, bin, incident)
				rank := rankOf(ch, wantKind[incident], target)
				if rank == 1 {
					s.top1++
				}
				if rank >= 1 && rank <= 3 {
					s.top3++
				}
				if rank != 1 {
					msg := fmt.Sprintf("%s: the injected %s naming %s ranks %d (0: absent) in the chain of settlement 4821:\n%s\nagent:\n%s",
						incident, wantKind[incident], target, rank, chainText(ch), out)
					if runs == 1 {
						t.Error(msg)
					} else {
						t.Log(msg)
					}
				}
			})
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ACCURACY %-16s %5s %7s %7s\n", "scenario", "runs", "top-1", "top-3")
	var all score
	for _, incident := range incidents[1:] {
		s := scores[incident]
		if s == nil {
			continue
		}
		fmt.Fprintf(&b, "ACCURACY %-16s %5d %6.0f%% %6.0f%%\n", incident, s.runs, pct(s.top1, s.runs), pct(s.top3, s.runs))
		all.runs, all.top1, all.top3 = all.runs+s.runs, all.top1+s.top1, all.top3+s.top3
	}
	fmt.Fprintf(&b, "ACCURACY %-16s %5d %6.0f%% %6.0f%%\n", "all", all.runs, pct(all.top1, all.runs), pct(all.top3, all.runs))
	t.Log("\n" + b.String())
	if f := os.Getenv("KPROBE_ACCURACY_OUT"); f != "" {
		if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func pct(n, of int) float64 { return 100 * float64(n) / float64(max(of, 1)) }

// rankOf is the rank of the first cause of kind that names target ("pid:N" or
// "file:DEV:INO"); 0 when none does.
func rankOf(ch investigate.Chain, kind, target string) int {
	for _, c := range ch.Causes {
		if c.Kind != kind {
			continue
		}
		switch {
		case strings.HasPrefix(target, "pid:"):
			if c.Process != nil && "pid:"+strconv.FormatUint(uint64(c.Process.PID), 10) == target {
				return c.Rank
			}
		case strings.HasPrefix(target, "file:"):
			f := strings.Split(target, ":")
			if len(f) == 3 && strings.HasSuffix(c.Resource, " inode "+f[2]) {
				return c.Rank
			}
		}
	}
	return 0
}

func chainText(ch investigate.Chain) string {
	var b bytes.Buffer
	investigate.WriteChainText(&b, ch)
	return b.String()
}

var (
	accBinOnce sync.Once
	accBinDir  string
	accBinErr  error
)

func accuracyBins(t *testing.T) string {
	t.Helper()
	accBinOnce.Do(func() {
		accBinDir, accBinErr = os.MkdirTemp("", "kprobe-accuracy")
		if accBinErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", accBinDir+"/", "../kprobe-agent", "../kprobe-tui", ".").CombinedOutput()
		if err != nil {
			accBinErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if accBinErr != nil {
		t.Fatalf("building the binaries: %v", accBinErr)
	}
	return accBinDir
}

// recordIncident runs one recording and returns the chain of settlement 4821, the target
// the demo reported and the agent's output.
func recordIncident(t *testing.T, bin, incident string) (investigate.Chain, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	cgName := fmt.Sprintf("kprobe-accuracy-%d-%d", os.Getpid(), time.Now().UnixNano())
	cgDir := filepath.Join(cgroup2Root(t), cgName)
	if err := os.Mkdir(cgDir, 0o755); err != nil {
		t.Skipf("cannot create a cgroup to record the demo's processes in: %v", err)
	}
	defer os.Remove(cgDir)
	cg, err := os.Open(cgDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	port := accFreePort(t)

	// The demo and its helpers start in the cgroup, in their own session, real-time
	// (chrt) where possible: what the other tests sharing these 2 cores do must not
	// drown the injected incident in CPU contention that is real but beside the point.
	argv := realtime(t, 10, filepath.Join(bin, "kprobe-demo"), "--start-signal", "--otlp", "127.0.0.1:"+port,
		"--ledger", filepath.Join(dir, "ledger"), "--settlements", "10", "--first-settlement", "4815",
		"--window-settlements", "5", "--incident", incident, "--incident-settlement", "4821")
	demo := exec.CommandContext(ctx, argv[0], argv[1:]...)
	demo.SysProcAttr = &syscall.SysProcAttr{Setsid: true, UseCgroupFD: true, CgroupFD: int(cg.Fd())}
	demoIn, err := demo.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	demoOut, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var demoErr bytes.Buffer
	demo.Stderr = &demoErr
	if err := demo.Start(); err != nil {
		t.Fatalf("starting the demo: %v", err)
	}
	defer demo.Process.Kill()
	lines := bufio.NewScanner(demoOut)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "ready pid=") {
		t.Fatalf("demo did not get ready: %q %s", lines.Text(), demoErr.String())
	}
	raisePriority(t, demo.Process.Pid)

	// The recorder real-time too (below the demo), so that it drains the ring buffer while
	// a real-time page-fault storm holds one core and other tests the other.
	argv = realtime(t, 5, filepath.Join(bin, "kprobe-agent"), "standalone", "--data", filepath.Join(dir, "data"),
		"--cgroup", cgName, "--otlp-grpc", "127.0.0.1:"+port, "--otlp-http", "", "--log-level", "info")
	agent := exec.CommandContext(ctx, argv[0], argv[1:]...)
	agent.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	agentOut := &lineWatch{want: "msg=recording", seen: make(chan struct{})}
	agent.Stderr = agentOut
	agent.Cancel = func() error { return agent.Process.Signal(syscall.SIGINT) }
	if err := agent.Start(); err != nil {
		t.Fatalf("starting the agent: %v", err)
	}
	defer agent.Process.Kill()
	raisePriority(t, agent.Process.Pid)
	select {
	case <-agentOut.seen:
	case <-time.After(2 * time.Minute):
		t.Fatalf("the agent did not start recording:\n%s", agentOut.String())
	}

	if _, err := io.WriteString(demoIn, "\n"); err != nil {
		t.Fatal(err)
	}
	target := ""
	var summary strings.Builder
	for lines.Scan() {
		summary.WriteString(lines.Text() + "\n")
		if m := regexp.MustCompile(` incident=\S+ target=(\S+)`).FindStringSubmatch(lines.Text()); m != nil {
			target = m[1]
		}
	}
	if err := demo.Wait(); err != nil {
		t.Fatalf("demo: %v\n%s%s", err, summary.String(), demoErr.String())
	}
	if target == "" || strings.HasSuffix(target, ":0") {
		t.Fatalf("the demo reported no target for its %s incident:\n%s", incident, summary.String())
	}
	if err := agent.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := agent.Wait(); err != nil {
		t.Fatalf("agent: %v\n%s", err, agentOut.String())
	}
	out := agentOut.String()
	if !regexp.MustCompile(`causal: drawn=[1-9]`).MatchString(out) {
		t.Fatalf("the causal engine drew no chain:\n%s", out)
	}
	if m := regexp.MustCompile(`lost: kernel=(\d+) .* userspace=(\d+)`).FindStringSubmatch(out); m == nil || m[1] != "0" || m[2] != "0" {
		// The recorder's own tests hold it to zero loss; here the diagnosis is judged on
		// what was recorded, and the loss is said.
		t.Logf("the recording lost events (the machine is loaded): %v", m)
	}

	var stdout, stderr bytes.Buffer
	tui := exec.CommandContext(ctx, filepath.Join(bin, "kprobe-tui"), "chain", "--data", filepath.Join(dir, "data"),
		"--settlement", "4821", "--format", "json")
	tui.Stdout, tui.Stderr = &stdout, &stderr
	if err := tui.Run(); err != nil {
		t.Fatalf("kprobe-tui chain: %v\n%s\nagent:\n%s", err, stderr.String(), out)
	}
	var ch investigate.Chain
	if err := json.Unmarshal(stdout.Bytes(), &ch); err != nil {
		t.Fatalf("chain JSON: %v\n%s", err, stdout.String())
	}
	if ch.Subject.Kind != investigate.KindSettlement || ch.Subject.ID != "4821" || len(ch.Causes) == 0 {
		t.Fatalf("chain of settlement 4821: %s", stdout.String())
	}
	if incident == incidentSlowStorage {
		checkChainFormats(t, ctx, bin, filepath.Join(dir, "data"), ch)
	}
	return ch, target, out
}

// checkChainFormats: the text and markdown forms of the same chain, and the one line an
// unknown settlement gets.
func checkChainFormats(t *testing.T, ctx context.Context, bin, data string, ch investigate.Chain) {
	t.Helper()
	tui := func(args ...string) (string, string, error) {
		var o, e bytes.Buffer
		c := exec.CommandContext(ctx, filepath.Join(bin, "kprobe-tui"), append([]string{"chain", "--data", data}, args...)...)
		c.Stdout, c.Stderr = &o, &e
		err := c.Run()
		return o.String(), e.String(), err
	}
	top := ch.Causes[0]
	text, _, err := tui("--settlement", "4821")
	if err != nil || !strings.HasPrefix(text, "settlement 4821  ") || !strings.Contains(text, "#1 "+top.Kind) || !strings.Contains(text, top.Summary) {
		t.Errorf("text chain (%v):\n%s", err, text)
	}
	md, _, err := tui("--settlement", "4821", "--format", "markdown")
	if err != nil || !strings.Contains(md, "settlement 4821 took ") || !strings.Contains(md, "1. **"+top.Kind+"** ") {
		t.Errorf("markdown chain (%v):\n%s", err, md)
	}
	// The same chain computed on demand from the event log, as for a store recorded
	// without the causal engine: the graph set aside.
	graph := filepath.Join(data, "graph")
	if err := os.Rename(graph, graph+".aside"); err != nil {
		t.Fatal(err)
	}
	js, errOut, err := tui("--settlement", "4821", "--format", "json")
	var onDemand investigate.Chain
	if err != nil || json.Unmarshal([]byte(js), &onDemand) != nil {
		t.Fatalf("on-demand chain: %v %s", err, errOut)
	}
	if diff := cmp.Diff(ch, onDemand); diff != "" {
		t.Errorf("the chain computed on demand differs from the one the engine drew (-drawn +on demand):\n%s", diff)
	}
	_, errOut, err = tui("--settlement", "999999")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "settlement 999999") {
		t.Errorf("unknown settlement: %v, stderr %q; want exit 1 and one line naming it", err, errOut)
	}
}

// realtime prefixes argv with chrt at a SCHED_FIFO priority, when util-linux's chrt is
// there.
func realtime(t *testing.T, prio int, argv ...string) []string {
	t.Helper()
	chrt, err := exec.LookPath("chrt")
	if err != nil {
		t.Logf("no chrt (util-linux): %s runs at normal priority and other load may blur the incident", filepath.Base(argv[0]))
		return argv
	}
	return append([]string{chrt, "--fifo", strconv.Itoa(prio)}, argv...)
}

// raisePriority gives the process's session (its autogroup) a higher weight than the
// test runner's other sessions.
func raisePriority(t *testing.T, pid int) {
	t.Helper()
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/autogroup", pid), []byte("-10"), 0); err != nil && !os.IsNotExist(err) {
		t.Logf("could not raise the priority of pid %d's session (%v): other load may blur the incident", pid, err)
	}
}

func cgroup2Root(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	t.Skip("no cgroup v2 hierarchy mounted: the demo's processes cannot be recorded together")
	return ""
}

func accFreePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// lineWatch keeps what is written to it and closes seen once a line contains want.
type lineWatch struct {
	mu   sync.Mutex
	b    bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if bytes.Contains(w.b.Bytes(), []byte(w.want)) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func (w *lineWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
