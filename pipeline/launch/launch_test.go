package launch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary is the launcher too, as a command's binary is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		// Exec runs on another thread than the process's first one (which the main
		// goroutine keeps), as it may in any Go program: the parent-death signal must
		// survive that.
		runtime.LockOSThread()
		go func() {
			if err := Exec(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "launch:", err)
			}
			os.Exit(127)
		}()
		select {}
	}
	if os.Getenv(helperEnv) != "" {
		os.Exit(holdingHelper())
	}
	os.Exit(m.Run())
}

const helperEnv = "KPROBE_LAUNCH_TEST_HELPER"

// holdingHelper is a recorder stand-in: it starts `sleep 1000` through the launcher,
// prints its pid, ends a few dozen OS threads (as goroutines that lock one and return
// do), prints "churned" and waits to be killed.
func holdingHelper() int {
	h, err := Start(context.Background(), []string{"sleep", "1000"}, Options{})
	if err == nil {
		err = h.Release()
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println(h.PID())
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		}()
	}
	wg.Wait()
	fmt.Println("churned")
	select {}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procComm is the kernel's name of pid.
func procComm(pid uint32) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// TestHeldUntilRelease: the program runs only after Release, under the pid Start gave.
func TestHeldUntilRelease(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "pid")
	var stderr bytes.Buffer
	h, err := Start(context.Background(), []string{"sh", "-c", `echo $$ > "$0"`, out}, Options{Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	// Held: the launcher is alive under its own name, and the program has not run.
	waitFor(t, "the launcher to be running", func() bool { return procComm(h.PID()) == h.comm })
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the program ran before its release: %v", err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(); err != nil {
		t.Fatalf("program: %v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the program did not run: %v", err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(int(h.PID())) {
		t.Errorf("program ran as pid %s, held as %d", got, h.PID())
	}
}

// TestAbort: a program never released never runs, and its launcher says why.
func TestAbort(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ran")
	var stderr bytes.Buffer
	h, err := Start(context.Background(), []string{"touch", out}, Options{Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	h.Abort()
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("an aborted program ran: %v", err)
	}
	if want := `recorder went away before "touch" started`; !strings.Contains(stderr.String(), want) {
		t.Errorf("launcher said %q, want %q", stderr.String(), want)
	}
	if code := h.cmd.ProcessState.ExitCode(); code != 127 {
		t.Errorf("aborted launcher exited %d, want 127", code)
	}
}

func TestStartErrors(t *testing.T) {
	for _, argv := range [][]string{nil, {"/nonexistent/kprobe-launch-test"}, {"no-such-command-kprobe"}} {
		if h, err := Start(context.Background(), argv, Options{}); err == nil {
			h.Abort()
			t.Errorf("Start(%q) succeeded", argv)
		}
	}
}

func TestSkipUntilExec(t *testing.T) {
	h := &Held{cmd: &exec.Cmd{Process: &os.Process{Pid: 7}}, comm: "kprobe-agent"}
	skip := h.Skip()
	steps := []struct {
		pid  uint32
		comm string
		skip bool
	}{
		{8, "kprobe-agent", false}, // another process
		{7, "kprobe-agent", true},  // the launcher, before exec
		{7, "dd", false},           // the exec'd command
		{7, "kprobe-agent", false}, // after exec: the command's, whatever its name
	}
	for i, s := range steps {
		if got := skip(s.pid, s.comm); got != s.skip {
			t.Errorf("step %d (%+v): skipped = %v, want %v", i, s, got, s.skip)
		}
	}
	// Another stream has its own order.
	if !h.Skip()(7, "kprobe-agent") {
		t.Error("a new predicate did not skip the launcher")
	}
}

func TestComm(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/kprobe-agent":              "kprobe-agent",
		"/tmp/x/a-very-long-binary-name-123": "a-very-long-bin",
	} {
		if got := comm(in); got != want {
			t.Errorf("comm(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestProgramDiesWithLauncherParent: when the process that started the program is killed
// (kill -9), the program is killed too; threads ending in that process meanwhile do not
// kill it (the parent-death signal is tied to the thread that forked).
func TestProgramDiesWithLauncherParent(t *testing.T) {
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"=1")
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Process.Kill()
	lines := bufio.NewScanner(stdout)
	var pid int
	if lines.Scan() {
		pid, err = strconv.Atoi(lines.Text())
	}
	if pid == 0 || err != nil {
		t.Fatalf("helper printed %q (%v), want the program's pid", lines.Text(), err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	waitFor(t, "the program to run", func() bool { return procComm(uint32(pid)) == "sleep" })
	if !lines.Scan() || lines.Text() != "churned" {
		t.Fatalf("helper printed %q, want churned", lines.Text())
	}
	if got := procComm(uint32(pid)); got != "sleep" {
		t.Fatalf("the program died when threads of its parent ended (comm now %q)", got)
	}
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	helper.Wait()
	waitFor(t, "the program to die with its parent", func() bool {
		err := syscall.Kill(pid, 0)
		return errors.Is(err, syscall.ESRCH) || procState(pid) == "Z"
	})
}

// procState is the state letter of pid ("Z" for a zombie nobody reaped yet).
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2 : i+3]
	}
	return ""
}

// TestStopKillsStubbornProgram: a program that ignores the SIGTERM of a stop is killed
// StopGrace later, so a stop always ends.
func TestStopKillsStubbornProgram(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := filepath.Join(t.TempDir(), "ready")
	h, err := Start(ctx, []string{"sh", "-c", `trap "" TERM; touch "$0"; while :; do sleep 0.1; done`, ready}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the program to ignore SIGTERM", func() bool { _, err := os.Stat(ready); return err == nil })
	cancel()
	err = h.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("stubborn program ended with %v, want killed", err)
	}
	if !h.Stopped() {
		t.Error("Stopped() = false after ctx ended")
	}
}
