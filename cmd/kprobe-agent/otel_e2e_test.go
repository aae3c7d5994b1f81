package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// End-to-end with real OpenTelemetry clients from the registries, their defaults
// untouched (only the endpoint is pointed at the test's receiver): each service is
// recorded by the real agent on the embedded default, selected by --pid and by --comm,
// and every settlement must get its own writes, joined with the client's trace ID.

// otelTruth is one settlement as the service saw it.
type otelTruth struct {
	id, trace  string
	tid        uint32
	bytes      int64
	start, end int64
}

func parseTruth(t *testing.T, out string) map[string]otelTruth {
	t.Helper()
	got := map[string]otelTruth{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 12 || f[0] != "settlement" {
			continue
		}
		tid, _ := strconv.ParseUint(f[5], 10, 32)
		n, _ := strconv.ParseInt(f[7], 10, 64)
		start, _ := strconv.ParseInt(f[9], 10, 64)
		end, _ := strconv.ParseInt(f[11], 10, 64)
		got[f[1]] = otelTruth{id: f[1], trace: f[3], tid: uint32(tid), bytes: n, start: start, end: end}
	}
	return got
}

// otelClient is one instrumented service, how to start it, and how to select it.
type otelClient struct {
	name string
	argv func(t *testing.T, dir string, grpcPort, httpPort int) ([]string, []string) // argv, extra env
	comm string
	// wantJoins are the join kinds its settlements' events may carry.
	wantJoins map[string]bool
	// concurrent: settlements run two at a time; thread-level joins must still give each
	// only its own thread's events (precision 1).
	exactThreads bool
}

func pythonClient() otelClient {
	return otelClient{
		name: "python",
		argv: func(t *testing.T, dir string, grpcPort, _ int) ([]string, []string) {
			py := otelInstall(t, "python.sh")
			return []string{py, "testdata/otel/settle.py", dir, "8", "6"},
				[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:" + strconv.Itoa(grpcPort)}
		},
		comm:      "python",
		wantJoins: map[string]bool{"on_cpu": true, "peer_pid": true},
	}
}

func javaClient() otelClient {
	return otelClient{
		name: "java",
		argv: func(t *testing.T, dir string, _, httpPort int) ([]string, []string) {
			home := otelInstall(t, "java.sh")
			classes := filepath.Join(dir, "classes")
			cp := filepath.Join(home, "lib") + "/*"
			if out, err := exec.Command("javac", "-d", classes, "-cp", cp, "testdata/otel/Settle.java").CombinedOutput(); err != nil {
				t.Fatalf("javac: %v\n%s", err, out)
			}
			// A name of its own, so --comm selects this JVM and not the others on the node.
			jvm := filepath.Join(dir, "settle-jvm")
			java, err := exec.LookPath("java")
			if err != nil {
				t.Fatal(err)
			}
			if java, err = filepath.EvalSymlinks(java); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(java, jvm); err != nil {
				t.Fatal(err)
			}
			return []string{jvm, "-javaagent:" + filepath.Join(home, "opentelemetry-javaagent.jar"),
					"-cp", classes + ":" + cp, "Settle", dir, "6"},
				[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:" + strconv.Itoa(httpPort), "OTEL_SERVICE_NAME=settlement-java"}
		},
		comm:         "settle-jvm",
		wantJoins:    map[string]bool{"thread_name": true},
		exactThreads: true,
	}
}

// otelInstall runs an install script of scripts/otel (cached, idempotent) and returns
// what it prints.
func otelInstall(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("../../scripts/otel/" + script).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("scripts/otel/%s: %v\n%s", script, err, stderr)
	}
	return strings.TrimSpace(string(out))
}

func TestOTelClients(t *testing.T) {
	needRoot(t)
	for _, c := range []otelClient{pythonClient(), javaClient()} {
		for _, by := range []string{"pid", "comm"} {
			t.Run(c.name+" by "+by, func(t *testing.T) { runOTelClient(t, c, by) })
		}
	}
}

func runOTelClient(t *testing.T, c otelClient, by string) {
	dir := t.TempDir()
	grpcPort, httpPort := e2eFreePort(t), e2eFreePort(t)
	argv, env := c.argv(t, dir, grpcPort, httpPort)

	svc := exec.Command(argv[0], argv[1:]...)
	svc.Env = append(os.Environ(), env...)
	stdin, err := svc.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var svcOut e2eBuffer
	svc.Stdout, svc.Stderr = &svcOut, &svcOut
	svc.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	svcDone := make(chan error, 1)
	go func() { svcDone <- svc.Wait() }()
	t.Cleanup(func() { syscall.Kill(-svc.Process.Pid, syscall.SIGKILL) })

	sel := []string{"--pid", strconv.Itoa(svc.Process.Pid)}
	if by == "comm" {
		sel = []string{"--comm", c.comm}
	}
	data := filepath.Join(dir, "data")
	agentArgs := append([]string{agent(t), "standalone", "--data", data, "--log-level", "info", "--lateness", "6s",
		"--otlp-grpc", "127.0.0.1:" + strconv.Itoa(grpcPort), "--otlp-http", "127.0.0.1:" + strconv.Itoa(httpPort)}, sel...)
	ag := e2eStart(t, "kprobe-agent", agentArgs...)
	ag.waitOutput(t, "msg=recording", 3*time.Minute)

	io.WriteString(stdin, "go\n")
	select {
	case err := <-svcDone:
		if err != nil {
			t.Fatalf("%s service: %v\n%s", c.name, err, svcOut.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("%s service did not finish:\n%s", c.name, svcOut.String())
	}
	syscall.Kill(ag.cmd.Process.Pid, syscall.SIGINT)
	if err := ag.wait(t, 2*time.Minute); err != nil {
		t.Fatalf("agent: %v\n%s", err, ag.out.String())
	}
	summary := ag.out.String()
	truth := parseTruth(t, svcOut.String())
	if len(truth) == 0 {
		t.Fatalf("the service printed no settlements:\n%s", svcOut.String())
	}

	tui, _ := e2eTools(t)
	out, err := exec.Command(tui, "events", "--data", data, "--pid", strconv.Itoa(svc.Process.Pid), "--from", "1").Output()
	if err != nil {
		t.Fatalf("kprobe-tui events: %v", err)
	}
	type stored struct {
		TsNs    int64  `json:"ts_ns"`
		TID     uint32 `json:"tid"`
		Type    string `json:"type"`
		Bytes   int64  `json:"bytes"`
		TraceID string `json:"trace_id"`
		Join    string `json:"join"`
		ID      string `json:"settlement.id"`
	}
	var evs []stored
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e stored
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad jsonl %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}

	if by == "comm" {
		threads := map[uint32]bool{}
		for _, e := range evs {
			threads[e.TID] = true
		}
		recordedWorker := false
		for _, tr := range truth {
			recordedWorker = recordedWorker || threads[tr.tid]
		}
		if !recordedWorker {
			// --comm selects a process by its name, with all its threads: threads the
			// service renamed (the JVM names its workers) must be recorded too.
			t.Fatalf("--comm %s recorded %d events, none of the worker threads: threads were selected by their own names, not the process's", c.comm, len(evs))
		}
	}

	// Every settlement gets its own writes, with the client's trace ID.
	ownWrites := map[string]int{}
	right, attributed := 0, 0
	joins := map[string]int{}
	for _, e := range evs {
		if e.ID == "" {
			continue
		}
		tr, ok := truth[e.ID]
		if !ok {
			continue
		}
		if e.TraceID != tr.trace {
			t.Errorf("event of settlement %s carries trace %s, the client's is %s", e.ID, e.TraceID, tr.trace)
		}
		attributed++
		joins[e.Join]++
		if e.TID == tr.tid {
			right++
		}
		if e.Type == "write" && e.Bytes == tr.bytes && e.TID == tr.tid {
			ownWrites[e.ID]++
		}
	}
	var missing []string
	for id := range truth {
		if ownWrites[id] == 0 {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%d of %d settlements did not get their own writes joined: %v\nagent summary:\n%s",
			len(missing), len(truth), missing, summary)
	}
	for j := range joins {
		if !c.wantJoins[j] {
			t.Errorf("events joined by %q (%v), want only %v", j, joins, c.wantJoins)
		}
	}
	precision := float64(right) / float64(max(attributed, 1))
	if c.exactThreads && right != attributed {
		t.Errorf("%d of %d events attributed to a settlement ran on another thread", attributed-right, attributed)
	}
	// The baseline: a join on the process and time alone (the innermost settlement whose
	// time holds the event, whatever its thread), over the same recorded events.
	baseRight, baseAll := 0, 0
	for _, e := range evs {
		var best *otelTruth
		for id := range truth {
			tr := truth[id]
			if tr.start <= e.TsNs && e.TsNs <= tr.end && (best == nil || tr.start > best.start) {
				best = &tr
			}
		}
		if best != nil {
			baseAll++
			if e.TID == best.tid {
				baseRight++
			}
		}
	}
	t.Logf("PRECISION %s by %s: %d settlements, %d without their own writes; joins %v; precision %.3f (%d of %d attributed events on the settlement's thread); pid-only baseline %.3f (%d of %d)",
		c.name, by, len(truth), len(missing), joins, precision, right, attributed,
		float64(baseRight)/float64(max(baseAll, 1)), baseRight, baseAll)
	for _, line := range strings.Split(summary, "\n") {
		if strings.HasPrefix(line, "joins:") || strings.HasPrefix(line, "  why:") || strings.HasPrefix(line, "otlp:") {
			t.Log(line)
		}
	}
}
