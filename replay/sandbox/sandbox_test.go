package sandbox

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func needRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs ptrace and seccomp: not in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (ptrace, seccomp user notification)")
	}
}

// serveReads answers every read of fd 0 from a fixed script and lets everything else run.
type serveReads struct {
	mu      sync.Mutex
	replies [][]byte
	calls   int
	started int
	exits   int
}

func (h *serveReads) Started(int)            { h.mu.Lock(); h.started++; h.mu.Unlock() }
func (h *serveReads) Stop(*Stop)             {}
func (h *serveReads) Spawned(int, int, bool) {}
func (h *serveReads) Exited(int, unix.WaitStatus) {
	h.mu.Lock()
	h.exits++
	h.mu.Unlock()
}

func (h *serveReads) Call(l *Listener, c *Call) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.Nr != unix.SYS_READ || c.Arg(0) != 0 {
		l.Continue(c)
		return
	}
	h.calls++
	if len(h.replies) == 0 {
		l.Return(c, 0)
		return
	}
	b := h.replies[0]
	if uint64(len(b)) > c.Args[2] {
		l.Fail(c, unix.EINVAL)
		return
	}
	if !l.Valid(c.ID) {
		return
	}
	if err := WriteMemory(c.TID, c.Args[1], b); err != nil {
		l.Fail(c, unix.EFAULT)
		return
	}
	if l.Return(c, int64(len(b))) == nil {
		h.replies = h.replies[1:]
	}
}

func TestRunServesReads(t *testing.T) {
	needRoot(t)
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat")
	}
	outR, outW, _ := os.Pipe()
	defer outR.Close()
	h := &serveReads{replies: [][]byte{[]byte("hello "), []byte("world\n")}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	var out bytes.Buffer
	go func() { out.ReadFrom(outR); close(done) }()
	exit, err := Run(ctx, Config{Path: cat, Args: []string{"cat"}, Stdout: outW, Notify: []int{unix.SYS_READ}}, h)
	outW.Close()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if exit.Code != 0 {
		t.Fatalf("cat: %s", exit)
	}
	if got := out.String(); got != "hello world\n" {
		t.Errorf("cat printed %q, want the served bytes", got)
	}
	if h.started != 1 || h.calls != 3 {
		t.Errorf("started %d times, %d reads of stdin served; want 1 and 3", h.started, h.calls)
	}
}

func osPipe() (*os.File, *os.File, error) { return os.Pipe() }
