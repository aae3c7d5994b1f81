// Command kprobe-demo is the bundled demo payment service: it processes payments into
// settlements, traced with the OpenTelemetry SDK, and can inject one kernel-level
// incident (slow storage, a CPU hog, memory pressure, a slow clearing peer) into one
// settlement, so that kprobe has something real to explain.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kprobe-demo:", err)
		os.Exit(1)
	}
}

// run takes stdin besides the usual arguments for --start-signal.
func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	cfg, err := parseConfig(args, os.Getenv)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stdin, stdout)
}
