package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// hogThreads compete with the worker on its CPU: the worker gets a fifth of it.
const hogThreads = 4

// pinToOneCPU pins the calling (locked) thread to the last CPU it may run on.
func pinToOneCPU() (int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return -1, fmt.Errorf("reading cpu affinity: %w", err)
	}
	cpu := -1
	for i := range 1024 {
		if set.IsSet(i) {
			cpu = i
		}
	}
	if cpu < 0 {
		return -1, fmt.Errorf("no cpu in the affinity set")
	}
	var one unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return -1, fmt.Errorf("pinning the worker to cpu %d: %w", cpu, err)
	}
	return cpu, nil
}

// startHogs starts n busy threads pinned to cpu; stop ends them and waits.
func startHogs(cpu, n int) (stop func(), err error) {
	var quit atomic.Bool
	var wg sync.WaitGroup
	errc := make(chan error, n)
	ready := make(chan struct{}, n)
	for range n {
		wg.Go(func() {
			// Never unlocked: the thread exits with the goroutine, pinning and all.
			runtime.LockOSThread()
			var one unix.CPUSet
			one.Set(cpu)
			if err := unix.SchedSetaffinity(0, &one); err != nil {
				errc <- fmt.Errorf("pinning a cpu hog to cpu %d: %w", cpu, err)
				return
			}
			ready <- struct{}{}
			x := uint64(1)
			for !quit.Load() {
				for range 1000 {
					x = x*6364136223846793005 + 1442695040888963407
				}
			}
			_ = x
		})
	}
	for range n {
		select {
		case <-ready:
		case err := <-errc:
			quit.Store(true)
			wg.Wait()
			return nil, err
		}
	}
	return func() { quit.Store(true); wg.Wait() }, nil
}

// touchFreshPages maps anonymous memory and writes one byte per page, in 32 MiB arenas
// unmapped after use, until d has passed: every touch is a page fault.
func touchFreshPages(d time.Duration) (pages int, err error) {
	const arena = 32 << 20
	page := os.Getpagesize()
	start := time.Now()
	for pages == 0 || time.Since(start) < d {
		mem, err := unix.Mmap(-1, 0, arena, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return pages, fmt.Errorf("mapping scratch memory: %w", err)
		}
		for off := 0; off < arena; off += page {
			mem[off] = 1
		}
		pages += arena / page
		if err := unix.Munmap(mem); err != nil {
			return pages, fmt.Errorf("unmapping scratch memory: %w", err)
		}
	}
	return pages, nil
}
