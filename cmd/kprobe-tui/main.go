package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var status exitStatus
	if errors.As(err, &status) {
		os.Exit(int(status)) // said what it had to say already (replay)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kprobe-tui:", err)
		os.Exit(1)
	}
}

const usage = `usage: kprobe-tui [flags]            the investigation workstation (needs a terminal)
       kprobe-tui <command> [flags]  for scripts

workstation: kprobe-tui --data DIR [--settlement ID] [--export-dir DIR] | --api HOST:PORT

commands:
  chain        the causal chain of a settlement (payment, trace ...): its causes, ranked
  events       print stored kernel events (by pid, time, trace, settlement ...)
  settlements  list the slowest settlements with the kernel events joined to them
  report       print the markdown incident report of a settlement
  replay       run a program in place of a recorded process, served from the recording
  import       load a recorded incident (testdata/demo/*.kpds) into --data

Data: --data DIR (the embedded default that 'kprobe-agent standalone' writes),
--clickhouse ADDR (a ClickHouse server; env KPROBE_CLICKHOUSE_ADDR) or --api HOST:PORT
(a kprobe API; env KPROBE_API).
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && !isHelp(args[0]) {
		return runWorkstation(ctx, args, stdout, stderr)
	}
	switch args[0] {
	case "replay":
		return runReplay(ctx, args[1:], stdout, stderr)
	case "replay-pane": // the workstation's replay worker (replayworker.go), not for people
		return runReplayPane(ctx, os.Stdin, stdout)
	case "report":
		return runReport(ctx, args[1:], stdout, stderr)
	case "import":
		return runImport(ctx, args[1:], stdout, stderr)
	case "events":
		return runEvents(ctx, args[1:], stdout, stderr)
	case "chain":
		return runChain(ctx, args[1:], stdout, stderr)
	case "settlements":
		return runSettlements(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (kprobe-tui help lists them)", args[0])
}

func isHelp(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }
