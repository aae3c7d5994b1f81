package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
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

	hs, err := newHelpers()
	if err != nil {
		return err
	}
	defer hs.stop()
	env, err := startHelpers(ctx, cfg, hs, st.path)
	if err != nil {
		return err
	}

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
		w, err := newWorker(ctx, cfg, tracer, st, env, stdout)
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

// env is what the worker talks to besides its ledger.
type env struct {
	gateway string // the clearing gateway's address
	bankPID int
	cpu     int     // the CPU the worker pins itself to (cpu-hog), -1 otherwise
	hog     *helper // cpu-hog
	locker  *helper // lock-contention
}

// startHelpers starts the bank, the gateway in front of it and what the incident needs.
func startHelpers(ctx context.Context, cfg config, hs *helpers, ledger string) (env, error) {
	e := env{cpu: -1}
	bankArgs := []string{}
	if cfg.incident == incidentSlowPeer {
		bankArgs = append(bankArgs, "--slow-settlement", strconv.Itoa(cfg.incidentSettlement), "--delay", cfg.incidentDuration.String())
	}
	bank, line, err := hs.start(ctx, roleBank, bankArgs...)
	if err != nil {
		return e, err
	}
	e.bankPID = bank.cmd.Process.Pid
	_, line, err = hs.start(ctx, roleGateway, "--upstream", field(line, "addr"))
	if err != nil {
		return e, err
	}
	e.gateway = field(line, "addr")
	switch cfg.incident {
	case incidentCPUHog:
		if e.cpu, err = lastCPU(); err != nil {
			return e, err
		}
		if e.hog, _, err = hs.start(ctx, roleHog, "--cpu", strconv.Itoa(e.cpu)); err != nil {
			return e, err
		}
	case incidentLock:
		if e.locker, _, err = hs.start(ctx, roleLocker, "--lock", lockPath(ledger)); err != nil {
			return e, err
		}
	}
	return e, nil
}

// lastCPU is the last CPU this process may run on.
func lastCPU() (int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return -1, fmt.Errorf("reading cpu affinity: %w", err)
	}
	for i := 1023; i >= 0; i-- {
		if set.IsSet(i) {
			return i, nil
		}
	}
	return -1, fmt.Errorf("no cpu in the affinity set")
}
