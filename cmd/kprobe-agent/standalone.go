package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/cmd/internal/wire"
	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/recorder"
)

// runStandalone is the embedded default: record + engine in one process, an in-process
// bus, the event log on the embedded ClickHouse engine under --data.
// busBytes bounds the recorded events waiting for the engine in memory.
const busBytes = 64 << 20

func runStandalone(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kprobe-agent standalone", flag.ContinueOnError)
	var ef wire.EngineFlags
	ef.Register(fs, wire.Standalone)
	fs.Usage = cli.Usage(fs, "usage: kprobe-agent standalone --data DIR [--pid PID]... [--comm NAME]... [--cgroup PATH]... [flags] [-- COMMAND ARGS...]\n\nRecords into the embedded stores under --data (read them with kprobe-tui --data DIR).\nFor Kafka, run 'kprobe-agent record --kafka' and 'kprobe-agent engine'.\n\n")
	// Only the recorder's selection flags: where events go is the engine's business here.
	var cfg recordConfig
	sel := registerSelection(fs, &cfg)
	if err := parseSelection(fs, args, stdout, sel, &cfg); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := ef.Check(); err != nil {
		return err
	}
	cfg.sayWhole(stderr)
	log, err := newLogger(stderr, cfg.logLevel)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Bounded in bytes as well: when the event log stalls (its disk full), the recorder's
	// events wait here up to busBytes, then are dropped and counted.
	mem := bus.NewMemory(1 << 14).LimitBytes(busBytes)
	eng, err := wire.StartEngine(ctx, ef, wire.EngineOptions{Logger: log, Source: mem, Node: wire.NodeName(cfg.node)})
	if err != nil {
		return err
	}
	// Set once the recorder is open; released last, once everything is closed.
	var stop *boundedStop
	defer func() { stop.release() }()
	defer func() { stop.at("closing the event log"); eng.Close() }()
	engDone := make(chan error, 1)
	// The engine outlives the recording: it drains the bus after the recorder stops.
	go func() { engDone <- eng.Run(context.WithoutCancel(ctx)) }()

	// The command's output goes to stderr, as with record's events on stdout: stdout is
	// kept for what standalone itself may print.
	rec, err := openRecorder(ctx, cfg, log, stderr, stderr)
	if err != nil {
		mem.Close()
		<-engDone
		return err
	}
	defer func() { stop.at("detaching the probes"); rec.Close() }()
	if cfg.duration > 0 {
		// As record's: from the moment the probes are attached, not from the start of a
		// store that may take seconds to open.
		timer := time.AfterFunc(cfg.duration, cancel)
		defer timer.Stop()
	}
	// The stop's clock starts when the stop is asked for, not once the recorder has
	// drained, so the recorder's backlog (seconds of events when the bus is behind) and
	// the engine's writes share the one drain timeout. Past it the recorder drops what it
	// still queues (counted as lost) and the engine gives up what it holds (and says so).
	stop = startBoundedStop(ctx, log, stderr, ef.DrainTimeout, eng.Drain, func() { rec.Close() })
	childErr := rec.RunCommand(cancel)
	pub := recorder.NewPublish(mem, 1024, "")
	log.Info("recording", "node", rec.Node())
	stop.at("draining the recorder")
	runErr := rec.Run(ctx, pub)
	eng.Drain() // the input ends here when it ended on its own (a recorder error)
	stop.at("writing what the engine holds")
	// The spans of the recording (a recorded command's exporter sends its last as it
	// exits) are in the engine before its input closes: no time is guessed for them.
	eng.HaltOTLP()
	mem.Close()
	engErr := <-engDone
	stop.at("drawing the causal engine's pending chains")
	causalErr := eng.StopCausal(stderr)
	stop.at("printing the summary")

	s := rec.Summary()
	printSummary(stderr, s, cfg)
	sent, dropped := pub.Stats()
	es := eng.Stats()
	fmt.Fprintf(stderr, "bus: published=%d dropped=%d\n", sent, dropped+mem.Stats().Dropped)
	fmt.Fprintf(stderr, "engine: spans=%d events=%d written=%d joined_tid=%d joined_pid=%d unmatched=%d\n",
		es.Spans, es.Events, es.Written, es.Correlator.JoinedTID, es.Correlator.JoinedPID, es.Correlator.Unmatched)
	printJoins(stderr, es.Correlator, ef.Lateness)
	eng.StopOTLP(stderr)
	fmt.Fprintf(stderr, "event log: %s\n", ef.EventLog())
	eng.APISummary(stderr)

	if runErr != nil && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, context.DeadlineExceeded) {
		return runErr
	}
	if engErr != nil {
		return engErr
	}
	if causalErr != nil {
		return causalErr
	}
	return <-childErr
}
