package main

import (
	"context"
	"errors"
	"flag"
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
	if isRole, err := runRole(ctx, os.Getenv(roleEnv), args, stdin, stdout); isRole {
		return err
	}
	cfg, err := parseConfig(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage(os.Getenv))
		return nil
	}
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stdin, stdout)
}
