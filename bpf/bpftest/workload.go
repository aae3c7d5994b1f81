// Package bpftest runs the test workload of the bpf package: a small C
// program (testdata/workload.c) that does a known amount of I/O, TCP, page faults,
// sleeps and threads after a "go" byte on stdin, so that tests and
// benchmarks can count exactly what the probes must see.
package bpftest

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

//go:embed testdata/workload.c
var workloadSource []byte

// NeedKernel skips tests that load BPF programs unless running as root
// outside -short.
func NeedKernel(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("loads BPF programs into the kernel: skipped in -short")
	}
	if os.Geteuid() != 0 {
		tb.Skip("needs root: loads BPF programs and attaches tracepoints")
	}
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
	buildDir  string
)

// Cleanup removes the built workload; call it from TestMain after m.Run.
func Cleanup() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// Binary compiles workload.c once per test binary and returns its path.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		gcc, err := exec.LookPath("gcc")
		if err != nil {
			buildErr = fmt.Errorf("gcc not found: %w", err)
			return
		}
		if buildDir, err = os.MkdirTemp("", "kprobe-bpftest"); err != nil {
			buildErr = err
			return
		}
		src := filepath.Join(buildDir, "workload.c")
		if err := os.WriteFile(src, workloadSource, 0o600); err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(buildDir, "workload")
		out, err := exec.Command(gcc, "-O2", "-Wall", "-pthread", "-o", binary, src).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building workload: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		if _, err := exec.LookPath("gcc"); err != nil {
			tb.Skipf("needs gcc to build the test workload: %v", err)
		}
		tb.Fatal(buildErr)
	}
	return binary
}

// PortPair is a TCP connection's ends.
type PortPair struct {
	Client int `json:"client_port"`
	Server int `json:"server_port"`
}

// Info is what the workload prints before waiting for "go".
type Info struct {
	PID       uint32   `json:"pid"`
	TID       uint32   `json:"tid"`
	FD        int32    `json:"fd"`
	Dev       uint64   `json:"dev"`
	Ino       uint64   `json:"ino"`
	V4        PortPair `json:"v4"`
	V6        PortPair `json:"v6"`
	Region    uint64   `json:"region"`
	RegionLen uint64   `json:"region_len"`
	PageSize  uint64   `json:"page_size"`
	Spinner   uint32   `json:"spinner"`
}

// Workload is a started workload, waiting for "go".
type Workload struct {
	Cmd    *exec.Cmd
	Stdin  io.WriteCloser
	stdout *bufio.Reader
	Info   Info
}

// Start starts the workload with args (its mode and parameters, see
// workload.c) and reads its setup line; it then waits for Go or Run. The
// process is killed at the end of the test.
func Start(tb testing.TB, args ...string) *Workload {
	tb.Helper()
	cmd := exec.Command(Binary(tb), args...)
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
	w := &Workload{Cmd: cmd, Stdin: stdin, stdout: bufio.NewReader(stdout)}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	w.Info = w.ReadInfo(tb)
	return w
}

// ReadInfo reads the setup line the workload prints before waiting for
// "go" (again after an exec).
func (w *Workload) ReadInfo(tb testing.TB) Info {
	tb.Helper()
	line, err := w.stdout.ReadBytes('\n')
	if err != nil {
		tb.Fatalf("reading workload info: %v", err)
	}
	var info Info
	if err := json.Unmarshal(line, &info); err != nil {
		tb.Fatalf("decoding workload info %q: %v", line, err)
	}
	return info
}

// Go signals go without waiting.
func (w *Workload) Go(tb testing.TB) {
	tb.Helper()
	if _, err := w.Stdin.Write([]byte{'g'}); err != nil {
		tb.Fatalf("signalling workload: %v", err)
	}
}

// Run signals go and waits for the workload to exit.
func (w *Workload) Run(tb testing.TB) {
	tb.Helper()
	w.Go(tb)
	if err := w.Cmd.Wait(); err != nil {
		tb.Fatalf("workload: %v", err)
	}
}
