package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/kprobe/kprobe/pipeline/launch"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == launch.Arg {
		// The launcher of a recorded command: it must not catch the SIGTERM or SIGINT
		// that stops the command, not even while it is held.
		fmt.Fprintln(os.Stderr, "kprobe-agent:", launch.Exec(os.Args[2:]))
		os.Exit(127)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kprobe-agent:", err)
		os.Exit(exitCode(err))
	}
}

// exitCode is 1, or the recorded command's own status when it failed by itself (as
// time(1) and strace do), so that a script wrapping a command in a recording still sees
// how the command ended.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return ee.ExitCode()
	}
	return 1
}

const usage = `usage: kprobe-agent <command> [flags]

commands:
  record      record kernel events of selected processes (eBPF)
  engine      consume kernel topics and spans from Kafka; correlate; write the event log
  standalone  record + engine in one process on the embedded stores (the embedded default)
  api         serve the investigation API over the stores (ClickHouse + Neo4j, or --data)
  ssh         serve the workstation over SSH (public keys only)

Run 'kprobe-agent <command> -h' for the flags of a command.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "record":
		return runRecord(ctx, args[1:], stdout, stderr)
	case "engine":
		return runEngine(ctx, args[1:], stdout, stderr)
	case "standalone":
		return runStandalone(ctx, args[1:], stdout, stderr)
	case "api":
		return runAPI(ctx, args[1:], stdout, stderr)
	case "ssh":
		return runSSH(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (kprobe-agent help lists them)", args[0])
}
