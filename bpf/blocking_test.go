package bpf

import (
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBlockingRead records reads that block in the kernel: the thread is
// switched out mid-syscall (and may resume on the other CPU), so the raw
// tracepoint path must carry the syscall over the context switch. Every
// read must be recorded exactly once, with its full duration.
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

	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		buf := make([]byte, 16)
		for range n {
			if _, err := unix.Read(p[0], buf); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range n {
		time.Sleep(wait)
		if _, err := unix.Write(p[1], []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	evs := s.stop(t)

	var reads, writes, blocked int
	for _, e := range evs {
		switch {
		case e.Type == EventRead && e.FD == int32(p[0]):
			reads++
			if e.Ret != 5 || e.Syscall != "read" {
				t.Errorf("read: %s ret %d, want read of 5 bytes", e.Syscall, e.Ret)
			}
			if e.DurNs >= uint64(wait/2) {
				blocked++
			}
		case e.Type == EventWrite && e.FD == int32(p[1]):
			writes++
		}
	}
	if reads != n || writes != n {
		t.Errorf("pipe reads %d, writes %d: want %d each", reads, writes, n)
	}
	// A loaded machine may start a read late; most must have blocked.
	if blocked < n/2 {
		t.Errorf("%d of %d reads lasted at least %v", blocked, n, wait/2)
	}
}
