package bpf

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBlockingRead records reads that block in the kernel: the thread is
// switched out mid-syscall (and may resume on the other CPU), so the raw
// tracepoint path must carry the syscall over the context switch. Every
// read must be recorded exactly once, with its full duration.
//
// Each write waits until the reader has returned from its previous read and
// is in read(2) again (seen in /proc/self/task/TID/syscall), then for wait
// more: every read blocks for at least wait and reads exactly one write,
// however loaded the machine.
func TestBlockingRead(t *testing.T) {
	needKernel(t)
	const n = 20
	const wait = 20 * time.Millisecond
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil { // blocking fds: the thread sleeps in read(2)
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	r := openProbes(t, Options{PIDs: []uint32{uint32(os.Getpid())}})
	s := startSession(r)

	tids := make(chan int, 1)
	got := make(chan error, n) // one per read returned
	go func() {
		runtime.LockOSThread()
		tids <- unix.Gettid()
		buf := make([]byte, 16)
		for range n {
			_, err := unix.Read(p[0], buf)
			got <- err
			if err != nil {
				return
			}
		}
	}()
	tid := <-tids
	for i := range n {
		if i > 0 {
			if err := <-got; err != nil {
				t.Fatal(err)
			}
		}
		waitInRead(t, tid, i)
		time.Sleep(wait) // the length of the block, not a synchronisation
		if _, err := unix.Write(p[1], []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	evs := s.stop(t)

	var reads, writes int
	for _, e := range evs {
		switch {
		case e.Type == EventRead && e.FD == int32(p[0]):
			reads++
			if e.Ret != 5 || e.Syscall != "read" {
				t.Errorf("read: %s ret %d, want read of 5 bytes", e.Syscall, e.Ret)
			}
			if e.DurNs < uint64(wait) {
				t.Errorf("read lasted %v, want at least %v (it blocked that long)", time.Duration(e.DurNs), wait)
			}
		case e.Type == EventWrite && e.FD == int32(p[1]):
			writes++
		}
	}
	if reads != n || writes != n {
		t.Errorf("pipe reads %d, writes %d: want %d each", reads, writes, n)
	}
}

// waitInRead waits until thread tid of this process is in read(2).
func waitInRead(t *testing.T, tid, i int) {
	t.Helper()
	waitInSyscall(t, fmt.Sprintf("/proc/self/task/%d/syscall", tid), func(f []string) bool {
		return f[0] == strconv.Itoa(unix.SYS_READ)
	}, fmt.Sprintf("read #%d", i))
}

// waitInSyscall waits until the thread whose /proc/.../syscall file is
// path is in the system call that match accepts (given the file's fields:
// number, six arguments in hex, stack and instruction pointers).
func waitInSyscall(t *testing.T, path string, match func(fields []string) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(b)); len(f) >= 7 && match(f) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: never in the expected system call: %s is %q", what, path, b)
		}
		time.Sleep(time.Millisecond)
	}
}
