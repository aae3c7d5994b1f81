package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// The embedded engine admits one process per directory. These tests hold the promise that
// an SRE can look while standalone records, and that a reader never locks out a recorder.

// waitSocket waits until the recorder's API socket in data answers.
func waitSocket(t *testing.T, data string, p *e2eProc) *client.Client {
	t.Helper()
	c, err := client.New(client.Options{Addr: "unix:" + client.SocketPath(data)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := c.Ping(ctx)
		cancel()
		if err == nil {
			return c
		}
		if e2eExited(p) {
			t.Fatalf("%s exited before serving its API socket:\n%s", p.name, p.out.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no API on %s after 3 minutes (%v):\n%s", client.SocketPath(data), err, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tui(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin, _ := e2eTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// TestQueryAndStreamLiveWhileRecording: while standalone records into --data, kprobe-tui
// reads that directory (through the API socket standalone serves inside it, mode 0600), a
// live stream shows the settlements and kernel events as they are written, and --api
// serves the same on TCP; once standalone exits, kprobe-tui reads the directory itself.
func TestQueryAndStreamLiveWhileRecording(t *testing.T) {
	needRoot(t)
	_, demo := e2eTools(t)
	data := t.TempDir()
	otlp, apiPort := e2eFreePort(t), e2eFreePort(t)
	apiAddr := "127.0.0.1:" + strconv.Itoa(apiPort)
	// Recording by name until stopped, so the demo runs once the live stream is in place.
	sa := e2eStart(t, "standalone", agent(t), "standalone", "--data", data, "--api", apiAddr, "--comm", "kprobe-demo",
		"--otlp-grpc", "127.0.0.1:"+strconv.Itoa(otlp), "--otlp-http", "", "--log-level", "info")
	c := waitSocket(t, data, sa)
	sa.waitOutput(t, "msg=recording", 3*time.Minute) // the probes are attached
	begin := time.Now()
	stage := func(what string) { t.Logf("%v: %s", time.Since(begin).Round(time.Millisecond), what) }
	if st, err := os.Stat(client.SocketPath(data)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("API socket: %v, mode %v; want 0600", err, st.Mode())
	}
	// A writer that cannot read through the socket (import opens the stores itself) is
	// told which process holds them, and never advised to move a healthy store aside.
	out, err := tui(t, "import", "--data", data, filepath.Join("..", "..", "testdata", "demo", "incident-slow-storage.kpds"))
	held := fmt.Sprintf("kprobe-tui: embedded event log %s is in use by pid %d (%s standalone --data %s ", eventlog.EmbeddedDir(data), sa.cmd.Process.Pid, agent(t), data)
	if err == nil || !strings.HasPrefix(out, held) || strings.Contains(out, "aside") || strings.Count(out, "\n") != 1 {
		t.Errorf("import into a held store: %v\n%s\nwant one line starting %q", err, out, held)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A bound for failures only: Next blocks until the stream says something.
	liveCtx, liveCancel := context.WithTimeout(ctx, 3*time.Minute)
	defer liveCancel()
	live, err := c.Live(liveCtx, client.LiveFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	run := e2eStart(t, "demo", e2eDemoArgs(demo, otlp, 8, filepath.Join(t.TempDir(), "ledger"))...)
	if err := run.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("demo: %v\n%s", err, run.out.String())
	}
	// Every settlement the demo made, 4821 among them, reaches the live stream once it is
	// written: then the queries below have all eight to find.
	var events int
	seen := map[string]bool{}
	for events == 0 || len(seen) < 8 || !seen["4821"] {
		u, err := live.Next()
		if err != nil {
			t.Fatalf("live: %d events, settlements %v: %v\n%s", events, slices.Sorted(maps.Keys(seen)), err, sa.out.String())
		}
		events += len(u.Events)
		for _, s := range u.Subjects {
			if s.Kind == investigate.KindSettlement {
				seen[s.ID] = true
			}
		}
	}

	stage("live stream saw the 8 settlements and events")
	// While standalone still records: the CLI over --data (the socket), and over --api.
	out, err = tui(t, "settlements", "--data", data, "--top", "10")
	if err != nil || !strings.Contains(out, "settlement 4821") {
		t.Fatalf("kprobe-tui settlements --data while recording: %v\n%s", err, out)
	}
	// Kernel events are joined to the settlement's spans once no late span can claim them
	// (--lateness): ask until they are in.
	for deadline := time.Now().Add(3 * time.Minute); ; {
		out, err = tui(t, "events", "--data", data, "--settlement", "4821")
		if err != nil {
			t.Fatalf("kprobe-tui events --data while recording: %v\n%s", err, out)
		}
		if strings.Count(out, "\n") > 0 {
			break
		}
		if time.Now().After(deadline) {
			st, _ := tui(t, "settlements", "--data", data, "--top", "10")
			t.Fatalf("no events of settlement 4821 while recording after 3 minutes; settlements say:\n%s", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	stage("kprobe-tui read the directory while recording")
	remote, err := client.New(client.Options{Addr: apiAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	subs, err := remote.Subjects(ctx, investigate.SubjectQuery{Kind: investigate.KindSettlement, Limit: 20})
	if err != nil || len(subs) != 8 {
		t.Fatalf("settlements over --api while recording: %d, %v; want 8", len(subs), err)
	}

	stage("--api answered")
	if err := sa.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	// Stopping drains the recording into the stores and finishes the causal chains: about
	// 2-7 s on 2 loaded cores, and over a minute once when the suite and others shared them.
	if err := sa.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("standalone: %v\n%s", err, sa.out.String())
	}
	if _, err := os.Stat(client.SocketPath(data)); err == nil {
		t.Error("standalone left its API socket behind")
	}
	stage("standalone stopped")
	after, err := tui(t, "events", "--data", data, "--settlement", "4821")
	if err != nil {
		t.Fatalf("kprobe-tui events --data after recording: %v\n%s", err, after)
	}
	if strings.Count(after, "\n") < strings.Count(out, "\n") {
		t.Errorf("after recording, %d events of 4821; while recording there were %d", strings.Count(after, "\n"), strings.Count(out, "\n"))
	}
}

// TestRecorderStartsWhileASlowReaderRuns: `kprobe-tui events --data D | less` where less
// does not read: the reader is stuck writing its output, and a recorder started on D then
// must record all the same (the reader held the store only for its query).
func TestRecorderStartsWhileASlowReaderRuns(t *testing.T) {
	needRoot(t)
	tuiBin, demo := e2eTools(t)
	data := t.TempDir()
	otlp := e2eFreePort(t)
	first := e2eStart(t, "standalone (first)", append([]string{agent(t), "standalone", "--data", data,
		"--otlp-grpc", "127.0.0.1:" + strconv.Itoa(otlp), "--otlp-http", "", "--"}, e2eDemoArgs(demo, otlp, 8, filepath.Join(t.TempDir(), "l"))...)...)
	if err := first.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("first recording: %v\n%s", err, first.out.String())
	}

	// The reader writes into a pipe nobody reads: it blocks once the pipe is full.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	reader := exec.Command(tuiBin, "events", "--data", data, "--from", "1")
	reader.Stdout = w
	var rerr bytes.Buffer
	reader.Stderr = &rerr
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	readerDone := make(chan error, 1)
	go func() { readerDone <- reader.Wait() }()
	full := func() bool {
		n, err := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ) // FIONREAD: bytes waiting in the pipe
		return err == nil && n >= 60<<10
	}
	for deadline := time.Now().Add(2 * time.Minute); !full(); {
		select {
		case err := <-readerDone:
			t.Fatalf("the reader finished (%v) before filling the pipe: not enough events to be slow (%s)", err, rerr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the reader never filled the pipe")
		}
		time.Sleep(20 * time.Millisecond)
	}

	second := e2eStart(t, "standalone (while a reader runs)", agent(t), "standalone", "--data", data,
		"--otlp-grpc", "", "--otlp-http", "", "--", "sh", "-c", "echo recorded > /dev/null")
	if err := second.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("a recorder started while a reader was stuck failed: %v\n%s", err, second.out.String())
	}
	if !strings.Contains(second.out.String(), "recorded ") {
		t.Errorf("second recording printed no summary:\n%s", second.out.String())
	}
	select {
	case err := <-readerDone:
		t.Fatalf("the reader finished (%v) before the recorder did: the test proved nothing", err)
	default:
	}
	// Let the reader finish: it printed every event of its query.
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-readerDone; err != nil {
		t.Fatalf("reader: %v\n%s", err, rerr.String())
	}
	if n := bytes.Count(rest, []byte("\n")); n < 200 {
		t.Errorf("reader printed %d events", n)
	}
}
