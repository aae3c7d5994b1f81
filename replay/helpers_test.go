package replay

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/pipeline/event"
)

const testPID = 4242

func needSandbox(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs ptrace and seccomp user notification: not in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (ptrace, seccomp user notification)")
	}
}

// script builds a recording the way the flight recorder would have written it.
type script struct {
	evs  []event.Event
	tick uint64
}

// call appends one recorded syscall of thread tid; ret < 0 is -errno.
func (s *script) call(tid uint32, name string, fd int32, ret int64, payload []byte, args ...int64) *event.Event {
	s.tick += 1000
	e := event.Event{Type: event.TypeSyscall, PID: testPID, TID: tid, KtimeNs: s.tick, DurNs: 500,
		Syscall: name, FD: fd, Args: args, Payload: payload}
	if ret < 0 {
		e.Errno = int32(-ret)
	} else {
		e.Bytes = ret
	}
	s.evs = append(s.evs, e)
	return &s.evs[len(s.evs)-1]
}

func (s *script) open(path string, ret int64) *event.Event {
	e := s.call(testPID, "openat", -100, ret, nil, -100, 0, unix.O_RDONLY|unix.O_CLOEXEC)
	e.Path = path
	return e
}

// result is what one replay printed and returned.
type result struct {
	stdout, stderr string
	sum            Summary
	trace          []Record
}

func replayIt(t *testing.T, evs []event.Event, tweaks []string, policy Policy, path string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	opts := Options{Log: Events(evs), Query: Query{PID: testPID}, Tweaks: tweaks, OnDivergence: policy}
	if os.Getenv("REPLAY_DEBUG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	run, err := Start(ctx, opts, Program{Path: path, Args: args, Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for r := range run.Trace() {
		recs = append(recs, r)
	}
	sum, err := run.Wait()
	if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), sum, recs}
}

// buildC compiles a C program from testdata into a temporary directory.
func buildC(t *testing.T, name string, defines ...string) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Fatal("no C compiler (make deps installs one)")
	}
	bin := filepath.Join(t.TempDir(), name)
	args := append([]string{"-O2", "-Wall", "-o", bin}, defines...)
	out, err := exec.Command(cc, append(args, filepath.Join("testdata", name+".c"), "-lpthread")...).CombinedOutput()
	if err != nil {
		t.Fatalf("compiling %s: %v\n%s", name, err, out)
	}
	return bin
}
