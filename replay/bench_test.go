package replay

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/pipeline/event"
)

// The replay benchmarks time one syscall inside the workload (testdata/loop.c, which
// reports ns per call itself, so process start-up is not in the figure), side by side:
//
//	native  the call as the kernel runs it, no sandbox
//	floor   a minimal C seccomp user-notification server answering it (testdata/floor.c)
//	replay  the engine serving it from a recording
//	strace  strace -e inject answering it (one ptrace stop each way)
//
// The metric is ns/call; ns/op includes starting the program.

func buildBench(b *testing.B, name string, static bool) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), name)
	args := []string{"-O2", "-o", bin, filepath.Join("testdata", name+".c")}
	if static {
		// No dynamic loader: every read of the loop is the loop's.
		args = append(args, "-static")
	}
	if out, err := exec.Command("cc", args...).CombinedOutput(); err != nil {
		b.Fatalf("compiling %s: %v\n%s", name, err, out)
	}
	return bin
}

// perCall runs a command and returns the ns/call it printed.
func perCall(b *testing.B, cmd *exec.Cmd) float64 {
	b.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s", cmd, err, errb.String())
	}
	return parsePerCall(b, out.String())
}

func parsePerCall(b *testing.B, out string) float64 {
	b.Helper()
	fields := strings.Fields(out)
	if len(fields) == 0 {
		b.Fatalf("the workload printed nothing")
	}
	v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
	if err != nil {
		b.Fatalf("the workload printed %q", out)
	}
	return v
}

// replayPerCall replays the workload against a recording of its open and n reads.
func replayPerCall(b *testing.B, loop string, evs []event.Event, args ...string) float64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	run, err := Start(ctx, Options{Log: Events(evs), Query: Query{PID: testPID}, Tweaks: []string{"timing=fast"}},
		Program{Path: loop, Args: args, Stdout: &out, Stderr: &errb})
	if err != nil {
		b.Fatal(err)
	}
	for range run.Trace() {
	}
	sum, err := run.Wait()
	if err != nil || sum.ExitCode != 0 || sum.Divergence != nil {
		b.Fatalf("replay: %v %+v\n%s", err, sum, errb.String())
	}
	return parsePerCall(b, out.String())
}

func readRecording(n int) []event.Event {
	var s script
	s.open("/bench/input", 3)
	data := bytes.Repeat([]byte("x"), 64)
	for i := 0; i < n; i++ {
		s.call(testPID, "read", 3, 64, data, 3, 0, 64)
	}
	return s.evs
}

func BenchmarkServedRead(b *testing.B) {
	needSandbox(b)
	loop := buildBench(b, "loop", true)
	floor := buildBench(b, "floor", false)
	b.Run("baseline_native", func(b *testing.B) {
		b.ReportAllocs()
		b.ReportMetric(perCall(b, exec.Command(loop, "read", "/dev/zero", strconv.Itoa(b.N))), "ns/call")
	})
	b.Run("floor_c_notify", func(b *testing.B) {
		b.ReportAllocs()
		// fd 3: the loop's first open.
		b.ReportMetric(perCall(b, exec.Command(floor, "3", loop, "read", "/dev/zero", strconv.Itoa(b.N))), "ns/call")
	})
	b.Run("replay", func(b *testing.B) {
		evs := readRecording(b.N)
		b.ReportAllocs()
		b.ResetTimer()
		b.ReportMetric(replayPerCall(b, loop, evs, "read", "/bench/input", strconv.Itoa(b.N)), "ns/call")
	})
	b.Run("strace_inject", func(b *testing.B) {
		strace, err := exec.LookPath("strace")
		if err != nil {
			b.Fatal("strace not installed (make deps installs it)")
		}
		b.ReportAllocs()
		b.ReportMetric(perCall(b, exec.Command(strace, "-qq", "-o", os.DevNull, "-e", "trace=read",
			"-e", "inject=read:retval=64", loop, "read", "/dev/zero", strconv.Itoa(b.N))), "ns/call")
	})
}

// BenchmarkUnservedSyscall: a syscall the filter lets through (getppid) under the replay,
// against the same call with no sandbox.
func BenchmarkUnservedSyscall(b *testing.B) {
	needSandbox(b)
	loop := buildBench(b, "loop", true)
	floor := buildBench(b, "floor", false)
	n := func(b *testing.B) string { return strconv.Itoa(max(b.N, 1000)) }
	b.Run("baseline_native", func(b *testing.B) {
		b.ReportAllocs()
		b.ReportMetric(perCall(b, exec.Command(loop, "getppid", n(b))), "ns/call")
	})
	b.Run("floor_c_filter", func(b *testing.B) {
		// The same loop under the C floor's two-instruction-deep filter, which lets
		// getppid through: what any seccomp filter costs an allowed call (the kernel's
		// syscall slow path), whatever the filter says.
		b.ReportAllocs()
		b.ReportMetric(perCall(b, exec.Command(floor, "3", loop, "getppid", n(b))), "ns/call")
	})
	b.Run("replay", func(b *testing.B) {
		var s script
		s.call(testPID, "close", 9, -int64(unix.EBADF), nil, 9) // a recording with nothing to serve
		b.ReportAllocs()
		b.ReportMetric(replayPerCall(b, loop, s.evs, "getppid", n(b)), "ns/call")
	})
}
