// Package replay re-runs a recorded process on this machine and serves it the syscall
// results it got in production, from the flight recorder's events: its reads of recorded
// files and sockets (with the bytes), its opens, connects and accepts, its polls and
// random bytes. Local calls (memory, threads, clocks, signals) run natively. What the
// program writes to recorded sockets and files is compared with production's and never
// reaches them. Tweaks (package tweak) change delays, results and timeouts before the
// run; a divergence (the program asks for what the recording does not have next) stops
// the run or lets it go on natively.
//
// # Mechanism, chosen by measurement
//
// On these machines (Linux 6.18, two vCPUs) one served call costs, in C: 8–10 µs through
// a seccomp user notification with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (the stopped thread
// and the supervisor ping-pong on one CPU), 14 µs pinned / ~70 µs unpinned through one
// SECCOMP_RET_TRACE ptrace stop, 167 µs through strace -e inject. A notification cannot
// change the call's registers; a ptrace stop can. So the engine is a hybrid (package
// sandbox):
//
//   - every served call stops once, in the supervisor (user notification, sync wake-up):
//     the reply carries the result, process_vm_writev the bytes, SECCOMP_IOCTL_NOTIF_ADDFD
//     the fds of served opens and accepts;
//   - the program runs under PTRACE_SEIZE with PTRACE_O_EXITKILL, following its threads,
//     children and execs, and passing their signals through (Go lives on SIGURG); the
//     tracer stops a call only where a register must change: a timeout tweak on poll,
//     epoll_wait, select or futex (SECCOMP_RET_TRACE, restored at the call's exit);
//   - everything else runs natively: the filter reads only the syscall number, so the
//     kernel's constant-verdict cache lets it through without running the filter.
//
// BenchmarkServedRead measures the served path beside native, the C notification floor
// (testdata/floor.c) and strace in one run; BenchmarkUnservedSyscall a call the filter
// lets through beside native (numbers in BENCHMARKS.md).
//
// # Matching
//
// Calls are matched to the recording by fd identity, not by time: the recorded fd table
// is rebuilt (package recording), each file and socket has its input and output streams,
// and the program's fds map to them as it opens, connects, accepts and dups. Opens match
// by path in order, connects by address, accepts by listening socket. Reads take the next
// recorded read of their stream (a smaller read takes part of it; a non-blocking read
// that found nothing in production is skipped, its wait added to the data's), so what the
// program sees does not depend on which of its threads asks. Writes are compared as a
// byte stream. The dynamic loader's shared objects, /proc, /sys and devices open
// natively. A served file is a memfd holding the bytes production read; a served socket
// is one end of a socket pair whose other end is closed (ready at once for poll and
// epoll, end of file once the replay stops serving). The program's stdout and stderr are
// its own: they pass through, uncompared.
//
// A notification withdrawn by a signal (the kernel restarts the call and delivers it
// again) gives back what its answer consumed: no record is served twice.
//
// # Using it
//
// Start runs one replay; the TUI's replay pane and kprobe-tui replay use it the same way:
//
//	run, err := replay.Start(ctx, replay.Options{
//		Log:    investigate.ReplayLog(svc), // or replay.Events(evs)
//		Query:  replay.Query{PID: 4242},
//		Tweaks: []string{"syscall=read,errno=ECONNRESET,nth=3", "timing=x2"},
//	}, replay.Program{Path: "./settlement-svc", Stdout: pane, Stderr: pane})
//	for rec := range run.Trace() { // served, native, tweaked or divergent, in batches
//		...
//	}
//	sum, err := run.Wait() // exit status, counts, the divergence
//
// Run.Stop kills the program. The program's output goes to Program.Stdout and Stderr as
// it is written (an *os.File is handed to the program itself).
package replay
