package replay

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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
// The metric is ns/call; ns/op includes starting the program. cpu-ns/call is the CPU
// time (user and system, every process and thread involved: the workload, the server,
// the tracer) per call, less what the same command costs with no call made: on a shared
// machine the wall time mostly measures the others' load, the CPU time much less.

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

// perCall runs a command and returns the ns/call it printed and the CPU time it and its
// descendants used.
func perCall(b *testing.B, cmd *exec.Cmd) (float64, time.Duration) {
	b.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\n%s", cmd, err, errb.String())
	}
	// wait4's usage of a child covers the descendants it reaped (the workload).
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return parsePerCall(b, out.String()), cpuTime(ru)
}

func cpuTime(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ownCPU is the CPU time of this process and of the children it reaped (the replayed
// program is reaped by the tracer thread).
func ownCPU() time.Duration {
	var self, children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	return cpuTime(&self) + cpuTime(&children)
}

// reportCommand runs the workload with n calls, and with none, and reports ns/call and
// cpu-ns/call. args is the command with the call count last.
func reportCommand(b *testing.B, n int, args ...string) {
	b.Helper()
	run := func(n int) (float64, time.Duration) {
		argv := append(slices.Clone(args), strconv.Itoa(n))
		return perCall(b, exec.Command(argv[0], argv[1:]...))
	}
	_, idle := run(0)
	ns, cpu := run(n)
	b.ReportMetric(ns, "ns/call")
	b.ReportMetric(float64(cpu-idle)/float64(n), "cpu-ns/call")
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

// reportReplay replays the workload (args, with the call count last) against the
// recording evs with n calls, and with none (the same recording: its set-up costs the
// same), and reports ns/call and cpu-ns/call.
func reportReplay(b *testing.B, loop string, evs []event.Event, n int, args ...string) {
	b.Helper()
	cpu0 := ownCPU()
	replayPerCall(b, loop, evs, append(slices.Clone(args), "0")...)
	cpu1 := ownCPU()
	ns := replayPerCall(b, loop, evs, append(slices.Clone(args), strconv.Itoa(n))...)
	cpu2 := ownCPU()
	b.ReportMetric(ns, "ns/call")
	b.ReportMetric(float64((cpu2-cpu1)-(cpu1-cpu0))/float64(n), "cpu-ns/call")
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
		reportCommand(b, b.N, loop, "read", "/dev/zero")
	})
	b.Run("floor_c_notify", func(b *testing.B) {
		b.ReportAllocs()
		// fd 3: the loop's first open.
		reportCommand(b, b.N, floor, "3", loop, "read", "/dev/zero")
	})
	b.Run("replay", func(b *testing.B) {
		evs := readRecording(b.N)
		b.ReportAllocs()
		b.ResetTimer()
		reportReplay(b, loop, evs, b.N, "read", "/bench/input")
	})
	b.Run("strace_inject", func(b *testing.B) {
		strace, err := exec.LookPath("strace")
		if err != nil {
			b.Fatal("strace not installed (make deps installs it)")
		}
		b.ReportAllocs()
		reportCommand(b, b.N, strace, "-qq", "-o", os.DevNull, "-e", "trace=read",
			"-e", "inject=read:retval=64", loop, "read", "/dev/zero")
	})
}

// BenchmarkUnservedSyscall: a syscall the filter lets through (getppid) under the replay,
// against the same call with no sandbox.
func BenchmarkUnservedSyscall(b *testing.B) {
	needSandbox(b)
	loop := buildBench(b, "loop", true)
	floor := buildBench(b, "floor", false)
	n := func(b *testing.B) int { return max(b.N, 1000) }
	b.Run("baseline_native", func(b *testing.B) {
		b.ReportAllocs()
		reportCommand(b, n(b), loop, "getppid")
	})
	b.Run("floor_c_filter", func(b *testing.B) {
		// The same loop under the C floor's two-comparison filter, which lets getppid
		// through: what any seccomp filter costs an allowed call (the kernel's syscall
		// slow path), whatever the filter says.
		b.ReportAllocs()
		reportCommand(b, n(b), floor, "3", loop, "getppid")
	})
	b.Run("replay", func(b *testing.B) {
		var s script
		s.call(testPID, "close", 9, -int64(unix.EBADF), nil, 9) // a recording with nothing to serve
		b.ReportAllocs()
		reportReplay(b, loop, s.evs, n(b), "getppid")
	})
}
