package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/kprobe/kprobe/api/client"
	"github.com/kprobe/kprobe/cmd/internal/apiflag"
	"github.com/kprobe/kprobe/cmd/internal/wire"
	"github.com/kprobe/kprobe/pipeline/dataset"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/replay"
)

// DivergenceExit is kprobe-tui replay's exit status when it stopped the program at a
// divergence (--on-divergence stop): not one a program's own failure is likely to have.
const DivergenceExit = 125

const replayUsage = `usage: kprobe-tui replay (--data DIR | --clickhouse ADDR | --api ADDR) --pid PID [--node NODE]
                        [--from T1 --to T2] [--tweak SPEC]... [--on-divergence stop|native]
                        [--trace FILE] -- PROGRAM ARGS...

Runs PROGRAM in place of the recorded process PID (recorded with --flight-recorder) and
serves it the syscall results production got: its reads of recorded files and sockets,
its connects and accepts, its polls and random bytes. Writes to recorded sockets and files
are compared with production's and never reach them. The program's stdout and stderr pass
through; every line of the replay's own starts with "replay:".

Tweaks (repeatable; the TUI takes the same):
  syscall=write,fd=5,nth=3..5,delay=200ms   hold the 3rd to 5th write to fd 5
  syscall=read,errno=EIO,nth=2              the 2nd read fails (strace: error=, retval=, when=)
  syscall=poll,timeout=50ms | timeout=x0.1  change the timeout the program passes
  timing=recorded|fast|x2                   production's durations, no waiting, or scaled

Exit status: the program's (128+N when killed by signal N); 125 when the replay stopped
the program at a divergence; 1 when the replay could not run.
`

// exitStatus ends kprobe-tui with a status and nothing more to print.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	// A bad flag is one "replay:" line; the usage is for -h (on stdout).
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprint(stdout, replayUsage, "\nflags:\n")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	var (
		src                 wire.Source
		node, from, to      string
		onDivergence, trace string
		pid                 uint
		tweaks              tweakFlags
	)
	src.Register(fs)
	fs.UintVar(&pid, "pid", 0, "the recorded process to replay")
	fs.StringVar(&node, "node", "", "the node it was recorded on (default: any)")
	fs.StringVar(&from, "from", "", "start of the recorded window, inclusive (RFC 3339 or ns since epoch)")
	fs.StringVar(&to, "to", "", "end of the recorded window, exclusive")
	fs.Var(&tweaks, "tweak", "a change to the replay (repeatable; see above)")
	fs.StringVar(&onDivergence, "on-divergence", "stop", "when the program leaves the recording: stop (kill it) or native (let it run on)")
	fs.StringVar(&trace, "trace", "", "write every intercepted syscall to this file as jsonl")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return replayFailed(stderr, err)
	}
	prog := fs.Args()
	opts, err := replayOptions(pid, node, from, to, onDivergence, tweaks, prog)
	if err != nil {
		return replayFailed(stderr, err)
	}
	log, closeLog, err := openReplayLog(ctx, src)
	if err != nil {
		return replayFailed(stderr, err)
	}
	// The recording is read whole before the program starts, and the source let go.
	evs, err := log.Syscalls(ctx, opts.Query)
	closeLog()
	if err != nil {
		return replayFailed(stderr, fmt.Errorf("reading the recording of pid %d: %w", opts.Query.PID, err))
	}
	opts.Log = replay.Events(evs)

	var traceOut *bufio.Writer
	if trace != "" {
		f, err := os.OpenFile(trace, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600) // it quotes the program's bytes
		if err != nil {
			return replayFailed(stderr, fmt.Errorf("--trace: %w", err))
		}
		defer f.Close()
		traceOut = bufio.NewWriter(f)
	}
	run, err := replay.Start(ctx, opts, replay.Program{Path: prog[0], Args: prog[1:], Stdin: os.Stdin, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return replayFailed(stderr, err)
	}
	enc := json.NewEncoder(traceOut)
	var traceErr error
	for rec := range run.Trace() {
		if traceOut != nil && traceErr == nil {
			traceErr = enc.Encode(rec)
		}
	}
	sum, err := run.Wait()
	if traceOut != nil && traceErr == nil {
		traceErr = traceOut.Flush()
	}
	if err != nil {
		return replayFailed(stderr, err)
	}
	if traceErr != nil {
		fmt.Fprintf(stderr, "replay: writing --trace %s: %v\n", trace, traceErr)
	}
	printReplaySummary(stderr, sum)
	switch {
	case sum.Stopped:
		return exitStatus(DivergenceExit)
	case sum.ExitCode != 0:
		return exitStatus(sum.ExitCode)
	}
	return nil
}

// replayFailed says what kept the replay from running, on one "replay:" line.
func replayFailed(stderr io.Writer, err error) error {
	fmt.Fprintf(stderr, "replay: %s\n", strings.TrimPrefix(err.Error(), "replay: "))
	return exitStatus(1)
}

func replayOptions(pid uint, node, from, to, onDivergence string, tweaks []string, prog []string) (replay.Options, error) {
	var o replay.Options
	if pid == 0 || pid > 1<<32-1 {
		return o, fmt.Errorf("--pid: give the recorded process's id")
	}
	if len(prog) == 0 {
		return o, fmt.Errorf("no program: give it after --, as in 'kprobe-tui replay --data DIR --pid %d -- ./settlement-svc'", pid)
	}
	policy, err := replay.ParsePolicy(onDivergence)
	if err != nil {
		return o, err
	}
	o.Query = replay.Query{Node: node, PID: uint32(pid)}
	win, err := parseWindow(from, to)
	if err != nil {
		return o, err
	}
	o.Query.From, o.Query.To = win.from, win.to
	o.Tweaks, o.OnDivergence = tweaks, policy
	return o, nil
}

// openReplayLog reads the recording through the use-case layer when an API serves it
// (the standalone recorder's socket under --data, or --api); a --data directory that no
// recorder holds is read by a child process (kprobe-tui events), so that the embedded
// engine, a C++ library with threads and signal handlers of its own, is never loaded in
// the process that traces the program; a ClickHouse server is read directly.
func openReplayLog(ctx context.Context, src wire.Source) (replay.Log, func(), error) {
	if src.Data != "" && src.ClickHouse == "" && !src.API.Set() {
		sock := client.SocketPath(src.Data)
		if _, err := os.Stat(sock); err != nil {
			return childLog{data: src.Data}, func() {}, nil
		}
		if conn, err := net.Dial("unix", sock); errors.Is(err, syscall.ECONNREFUSED) {
			// The socket of a recorder that died (SIGKILL, OOM): nothing holds the store.
			return childLog{data: src.Data}, func() {}, nil
		} else if err == nil {
			conn.Close()
		}
		// Only the recorder's API: never the stores in this process, as datadir would.
		c, err := apiflag.DialOptions(ctx, client.Options{Addr: "unix:" + sock})
		if err != nil {
			return nil, nil, err
		}
		return investigate.ReplayLog(c), func() { c.Close() }, nil
	}
	svc, err := src.Open(ctx)
	if err != nil {
		return nil, nil, err
	}
	return investigate.ReplayLog(svc), func() { svc.Close() }, nil
}

// childLog reads a process's flight-recorder events from a --data directory with
// 'kprobe-tui events' in a child process.
type childLog struct{ data string }

func (l childLog) Syscalls(ctx context.Context, q replay.Query) ([]event.Event, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"events", "--data", l.data, "--pid", strconv.FormatUint(uint64(q.PID), 10), "--type", "syscall"}
	if q.Node != "" {
		args = append(args, "--node", q.Node)
	}
	if q.From != 0 {
		args = append(args, "--from", strconv.FormatInt(q.From, 10))
	}
	if q.To != 0 {
		args = append(args, "--to", strconv.FormatInt(q.To, 10))
	}
	cmd := exec.CommandContext(ctx, self, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s", strings.TrimSpace(strings.TrimPrefix(lastLine(errb.String()), "kprobe-tui: ")))
	}
	return dataset.ReadJSONL(&out)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func printReplaySummary(w io.Writer, s replay.Summary) {
	if d := s.Divergence; d != nil {
		fmt.Fprintf(w, "replay: %s\n", d)
	}
	status := fmt.Sprintf("exit status %d", s.ExitCode)
	if s.Signal != "" {
		status = "killed by " + s.Signal
	}
	if s.Stopped {
		status += fmt.Sprintf(" (stopped at the divergence: exit status %d)", DivergenceExit)
	}
	fmt.Fprintf(w, "replay: served %d, native %d, tweaked %d syscalls in %s; %s\n",
		s.Served, s.Native, s.Tweaked, s.Duration.Round(1e6), status)
	if s.Unconsumed > 0 {
		fmt.Fprintf(w, "replay: %d recorded inputs were never asked for (the program ended before production did)\n", s.Unconsumed)
	}
	for _, t := range s.UnmatchedTweaks {
		fmt.Fprintf(w, "replay: tweak %q selected no call\n", t)
	}
	if s.TraceDropped > 0 {
		fmt.Fprintf(w, "replay: %d trace records dropped (the reader was slow)\n", s.TraceDropped)
	}
}

// tweakFlags is the repeatable --tweak.
type tweakFlags []string

func (t *tweakFlags) String() string     { return strings.Join(*t, " ") }
func (t *tweakFlags) Set(v string) error { *t = append(*t, v); return nil }
