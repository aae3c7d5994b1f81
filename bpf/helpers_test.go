package bpf

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// needKernel skips tests that load BPF programs unless running as root
// outside -short.
func needKernel(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("loads BPF programs into the kernel: skipped in -short")
	}
	if os.Geteuid() != 0 {
		tb.Skip("needs root: loads BPF programs and attaches tracepoints")
	}
}

var (
	workloadOnce sync.Once
	workloadBin  string
	workloadErr  error
	workloadDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if workloadDir != "" {
		os.RemoveAll(workloadDir)
	}
	os.Exit(code)
}

// buildWorkload compiles testdata/workload.c once per test binary.
func buildWorkload(tb testing.TB) string {
	tb.Helper()
	workloadOnce.Do(func() {
		gcc, err := exec.LookPath("gcc")
		if err != nil {
			workloadErr = fmt.Errorf("gcc not found: %w", err)
			return
		}
		workloadDir, err = os.MkdirTemp("", "kprobe-bpf-workload")
		if err != nil {
			workloadErr = err
			return
		}
		workloadBin = filepath.Join(workloadDir, "workload")
		out, err := exec.Command(gcc, "-O2", "-Wall", "-pthread", "-o", workloadBin, "testdata/workload.c").CombinedOutput()
		if err != nil {
			workloadErr = fmt.Errorf("building workload: %v\n%s", err, out)
		}
	})
	if workloadErr != nil {
		if _, err := exec.LookPath("gcc"); err != nil {
			tb.Skipf("needs gcc to build testdata/workload.c: %v", err)
		}
		tb.Fatal(workloadErr)
	}
	return workloadBin
}

type portPair struct {
	Client int `json:"client_port"`
	Server int `json:"server_port"`
}

// workloadInfo is what the workload prints before waiting for "go".
type workloadInfo struct {
	PID       uint32   `json:"pid"`
	TID       uint32   `json:"tid"`
	FD        int32    `json:"fd"`
	Dev       uint64   `json:"dev"`
	Ino       uint64   `json:"ino"`
	V4        portPair `json:"v4"`
	V6        portPair `json:"v6"`
	Region    uint64   `json:"region"`
	RegionLen uint64   `json:"region_len"`
	PageSize  uint64   `json:"page_size"`
	Spinner   uint32   `json:"spinner"`
}

type workload struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	info   workloadInfo
}

// startWorkload starts the workload and reads its setup line; it then
// blocks until go() is called.
func startWorkload(tb testing.TB, args ...string) *workload {
	tb.Helper()
	cmd := exec.Command(buildWorkload(tb), args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	w := &workload{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout)}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	w.info = w.readInfo(tb)
	return w
}

// readInfo reads the setup line the workload prints before waiting for "go"
// (again after an exec).
func (w *workload) readInfo(tb testing.TB) workloadInfo {
	tb.Helper()
	line, err := w.stdout.ReadBytes('\n')
	if err != nil {
		tb.Fatalf("reading workload info: %v", err)
	}
	var info workloadInfo
	if err := json.Unmarshal(line, &info); err != nil {
		tb.Fatalf("decoding workload info %q: %v", line, err)
	}
	return info
}

// start signals go without waiting.
func (w *workload) start(tb testing.TB) {
	tb.Helper()
	if _, err := w.stdin.Write([]byte{'g'}); err != nil {
		tb.Fatalf("signalling workload: %v", err)
	}
}

// run signals go and waits for the workload to exit.
func (w *workload) run(tb testing.TB) {
	tb.Helper()
	w.start(tb)
	if err := w.cmd.Wait(); err != nil {
		tb.Fatalf("workload: %v", err)
	}
}

// session runs the Probes and collects every delivered event.
type session struct {
	r      *Probes
	cancel context.CancelFunc
	done   chan struct{}
	runErr chan error
	events []Event
}

func openProbes(tb testing.TB, opts Options) *Probes {
	tb.Helper()
	r, err := Open(context.Background(), opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

func startSession(r *Probes) *session {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{r: r, cancel: cancel, done: make(chan struct{}), runErr: make(chan error, 1)}
	go func() {
		s.runErr <- r.Run(ctx)
	}()
	go func() {
		defer close(s.done)
		for b := range r.Batches() {
			s.events = append(s.events, b...)
		}
	}()
	return s
}

// stop ends Run (draining what is already in the ring) and returns the events.
func (s *session) stop(tb testing.TB) []Event {
	tb.Helper()
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		tb.Fatal("recorder did not stop")
	}
	if err := <-s.runErr; err != nil {
		tb.Fatalf("Run: %v", err)
	}
	return s.events
}

// loadedProgram is the program of p that pick names in the typed specs.
func loadedProgram(tb testing.TB, p *Probes, pick func(*bpfProgramSpecs) *ebpf.ProgramSpec) *ebpf.Program {
	tb.Helper()
	spec, err := loadBpf()
	if err != nil {
		tb.Fatal(err)
	}
	var specs bpfSpecs
	if err := spec.Assign(&specs); err != nil {
		tb.Fatal(err)
	}
	name := pick(&specs.bpfProgramSpecs).Name
	prog := p.coll.Programs[name]
	if prog == nil {
		tb.Fatalf("program %s not loaded", name)
	}
	return prog
}

func filterEvents(evs []Event, keep func(*Event) bool) []Event {
	var out []Event
	for i := range evs {
		if keep(&evs[i]) {
			out = append(out, evs[i])
		}
	}
	return out
}
