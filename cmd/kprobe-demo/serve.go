package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"
)

// serve runs the demo: the clearing peer, then the settlements on one worker thread.
func serve(ctx context.Context, cfg config, stdin io.Reader, stdout io.Writer) (err error) {
	tracer, shutdown, err := newTracing(ctx, cfg.otlp)
	if err != nil {
		return err
	}
	defer func() {
		// Flush the spans even when ctx ended: they describe what did run.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if serr := shutdown(sctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("flushing spans: %w", serr))
		}
	}()

	ledgerPath := cfg.ledger
	if ledgerPath == "" {
		dir, err := os.MkdirTemp("", "kprobe-demo-")
		if err != nil {
			return fmt.Errorf("creating ledger directory: %w", err)
		}
		defer os.RemoveAll(dir)
		ledgerPath = dir + "/ledger.csv"
	}
	st, err := openStorage(ledgerPath)
	if err != nil {
		return err
	}
	defer st.close()

	slowID := 0
	if cfg.incident == incidentSlowPeer {
		slowID = cfg.incidentSettlement
	}
	p, err := startPeer(ctx, slowID, cfg.incidentDuration)
	if err != nil {
		return err
	}
	defer p.close()

	if cfg.startSignal {
		if err := waitStart(ctx, stdin, stdout); err != nil {
			return err
		}
	}

	done := make(chan error, 1)
	go func() {
		// One OS thread does all the settlement work, so spans carry a true thread.id and
		// the recorder's events on that thread join them. The thread is not unlocked: it
		// exits with the goroutine, taking any CPU pinning with it.
		runtime.LockOSThread()
		w, err := newWorker(ctx, cfg, tracer, st, p.addr(), stdout)
		if err != nil {
			done <- err
			return
		}
		defer w.close()
		done <- w.run(ctx)
	}()
	return <-done
}

// waitStart announces the pid and waits for a newline on stdin.
func waitStart(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	if _, err := fmt.Fprintf(stdout, "ready pid=%d\n", os.Getpid()); err != nil {
		return fmt.Errorf("writing ready line: %w", err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(stdin).ReadString('\n')
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			return fmt.Errorf("waiting for the start signal on stdin: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
