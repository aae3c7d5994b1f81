package replay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kprobe/kprobe/bpf"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/recorder"
)

// peer is the TCP peer the test programs talk to: it sends a request, reads the result,
// and acknowledges it. Results holds what it was sent.
type peer struct {
	ln      net.Listener
	mu      sync.Mutex
	results []string
	wg      sync.WaitGroup
	request string
	delay   time.Duration
}

func startPeer(t *testing.T, request string) *peer {
	t.Helper()
	return startSlowPeer(t, 0, request)
}

// startSlowPeer is a peer that waits before it sends the request.
func startSlowPeer(t *testing.T, wait time.Duration, request string) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{ln: ln, request: request, delay: wait}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(30 * time.Second))
			time.Sleep(p.delay) // the peer is slow to answer: part of what is recorded
			c.Write([]byte(p.request))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err == nil {
				p.mu.Lock()
				p.results = append(p.results, line)
				p.mu.Unlock()
				c.Write([]byte("ok\n"))
			}
			c.Close()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *peer) addr() string { return p.ln.Addr().String() }

// stop closes the listener: the peer is gone.
func (p *peer) stop() { p.ln.Close(); p.wg.Wait() }

// production is one run of a program under the real flight recorder.
type production struct {
	events         []event.Event
	pid            uint32
	stdout, stderr string
	exit           int
}

// record runs bin (held until its pid is selected, then exec'd) under the flight
// recorder and returns its events and what it printed, as production saw it.
func record(t *testing.T, env []string, bin string, args ...string) production {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.Command("/bin/sh", append([]string{"-c", `read _; exec "$0" "$@"`, bin}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	f, err := bpf.OpenFlight(ctx, bpf.FlightOptions{PIDs: []uint32{pid}})
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	defer f.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(runCtx) }()
	var calls []bpf.FlightCall
	collected := make(chan struct{})
	go func() {
		for b := range f.Batches() {
			calls = append(calls, b...)
		}
		close(collected)
	}()
	in.Write([]byte("go\n"))
	in.Close()
	werr := cmd.Wait()
	stop() // the process is gone: flushing drains its last calls
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-collected
	p := production{pid: pid, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(werr, &ee):
		p.exit = ee.ExitCode()
	case werr != nil:
		t.Fatal(werr)
	}
	if st := f.Stats(); st.LostCalls+st.LostChunks+st.QueueDropped+st.DecodeErrors > 0 {
		t.Fatalf("the flight recorder lost calls: %+v", st)
	}
	clock := bpf.NewClock()
	comm := filepath.Base(bin)
	if len(comm) > 15 {
		comm = comm[:15]
	}
	for i := range calls {
		// The shell that held the program is not the program.
		if calls[i].Comm != comm {
			continue
		}
		var e event.Event
		recorder.ConvertFlight("test-node", clock, &calls[i], &e)
		p.events = append(p.events, e)
	}
	if len(p.events) == 0 {
		t.Fatalf("nothing recorded of %s (%d calls in all)", comm, len(calls))
	}
	return p
}

// replayRecorded replays a production run of pid with the given program.
func replayRecorded(t *testing.T, prod production, env []string, tweaks []string, policy Policy, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	opts := Options{Log: Events(prod.events), Query: Query{PID: prod.pid}, Tweaks: tweaks, OnDivergence: policy}
	if os.Getenv("REPLAY_DEBUG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	run, err := Start(ctx, opts,
		Program{Path: bin, Args: args, Env: append(os.Environ(), env...), Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for r := range run.Trace() {
		recs = append(recs, r)
		if os.Getenv("REPLAY_DEBUG") != "" {
			t.Logf("%+v", r)
		}
	}
	sum, err := run.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), sum, recs}
}

// buildGo builds the Go test program.
func buildGo(t *testing.T, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, "./"+pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, out)
	}
	return bin
}

func traceSummary(recs []Record) string {
	var b strings.Builder
	for _, r := range recs {
		if r.Kind != Native {
			b.WriteString(r.Kind.String() + " " + r.Syscall + " " + r.Resource + " " + r.Detail + "\n")
		}
	}
	return b.String()
}
