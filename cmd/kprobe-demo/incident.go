package main

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

func pinTo(cpu int) error {
	var one unix.CPUSet
	one.Set(cpu)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return fmt.Errorf("pinning to cpu %d: %w", cpu, err)
	}
	return nil
}

// hogNiceGap: the hog runs this many nice levels above the service (a batch job started
// with the wrong priority), so the kernel preempts the service for it.
const hogNiceGap = 10

// serveHog: cpu-hog --cpu N. Pins itself to the CPU and raises its priority above the
// demo's, prints "ready cpu=N priority=P", then for each "spin D" line burns the CPU for D
// and prints "done".
func serveHog(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(roleHog, flag.ContinueOnError)
	cpu := fs.Int("cpu", 0, "the CPU to burn")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Nice is per thread on Linux: the spinning thread is the one to raise.
	runtime.LockOSThread()
	if err := pinTo(*cpu); err != nil {
		return err
	}
	prio, err := outrank()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cpu-hog: cannot raise its priority (%v): running at the demo's\n", err)
	}
	fmt.Fprintf(stdout, "ready cpu=%d priority=%s\n", *cpu, prio)
	// obey runs do on this goroutine, so on the pinned, raised thread.
	return obey(ctx, stdin, roleHog, "spin", func(d time.Duration) error {
		burn(d)
		_, err := fmt.Fprintln(stdout, "done")
		return err
	})
}

// outrank raises the calling thread above the demo that started it: a real-time demo
// (kprobe's tests run it so) by ten real-time priorities, otherwise by hogNiceGap nice
// levels.
func outrank() (string, error) {
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return "", fmt.Errorf("reading scheduling policy: %w", err)
	}
	if attr.Policy == unix.SCHED_FIFO || attr.Policy == unix.SCHED_RR {
		attr.Priority = min(attr.Priority+10, 99)
		attr.Flags = 0
		if err := unix.SchedSetAttr(0, attr, 0); err != nil {
			return "", fmt.Errorf("raising real-time priority: %w", err)
		}
		return fmt.Sprintf("rt:%d", attr.Priority), nil
	}
	raw, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	if err != nil {
		return "", fmt.Errorf("reading priority: %w", err)
	}
	nice := max(20-raw-hogNiceGap, -20) // the raw syscall value is 20-nice
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, nice); err != nil {
		return "", fmt.Errorf("raising priority to nice %d: %w", nice, err)
	}
	return fmt.Sprintf("nice:%d", nice), nil
}

// burn keeps the CPU busy for d.
func burn(d time.Duration) {
	end := time.Now().Add(d)
	x := uint64(1)
	for time.Now().Before(end) {
		for range 10000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	_ = x
}

// serveLocker: ledger-recon --lock PATH, the ledger's reconciler. Prints "ready"; for each
// "hold D" it takes the ledger lock (flock), prints "held", reconciles (CPU work) for D
// while holding it, lets it go and prints "released".
func serveLocker(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(roleLocker, flag.ContinueOnError)
	path := fs.String("lock", "", "the ledger's lock file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.OpenFile(*path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("opening the ledger lock: %w", err)
	}
	defer f.Close()
	fmt.Fprintln(stdout, "ready")
	return obey(ctx, stdin, roleLocker, "hold", func(d time.Duration) error {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			return fmt.Errorf("locking the ledger: %w", err)
		}
		fmt.Fprintln(stdout, "held")
		reconcile(d)
		if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
			return fmt.Errorf("unlocking the ledger: %w", err)
		}
		_, err := fmt.Fprintln(stdout, "released")
		return err
	})
}

// reconcile checksums in a loop for d: a reconciliation run holding the ledger.
func reconcile(d time.Duration) {
	buf := make([]byte, 64<<10)
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		sum := sha256.Sum256(buf)
		copy(buf, sum[:])
	}
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
