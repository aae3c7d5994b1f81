package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kprobe/kprobe/cmd/internal/wire"
	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/recorder"
)

// runStandalone is the embedded default: record + engine in one process, an in-process
// bus, the event log on the embedded ClickHouse engine under --data.
// busBytes bounds the recorded events waiting for the engine in memory.
const busBytes = 64 << 20

func runStandalone(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var ef wire.EngineFlags
	ef.Register(fs, wire.Standalone)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: kprobe-agent standalone --data DIR [record flags] [-- COMMAND ARGS...]\n\n")
		fs.PrintDefaults()
	}
	cfg, err := parseRecordFlags(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := ef.Check(); err != nil {
		return err
	}
	var kafkaFlag bool
	fs.Visit(func(f *flag.Flag) {
		kafkaFlag = kafkaFlag || f.Name == "kafka" || f.Name == "topic-prefix" || strings.HasPrefix(f.Name, "kafka-")
	})
	if kafkaFlag {
		return fmt.Errorf("standalone runs on the in-process bus: for Kafka run 'kprobe-agent record --kafka' and 'kprobe-agent engine'")
	}
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
	defer eng.Close()
	engDone := make(chan error, 1)
	// The engine outlives the recording: it drains the bus after the recorder stops.
	go func() { engDone <- eng.Run(context.WithoutCancel(ctx)) }()

	rec, err := openRecorder(ctx, cfg, log, stderr)
	if err != nil {
		mem.Close()
		<-engDone
		return err
	}
	defer rec.Close()
	if cfg.duration > 0 {
		// As record's: from the moment the probes are attached, not from the start of a
		// store that may take seconds to open.
		timer := time.AfterFunc(cfg.duration, cancel)
		defer timer.Stop()
	}
	childErr := rec.RunCommand(cancel)
	pub := recorder.NewPublish(mem, 1024, "")
	log.Info("recording", "node", rec.Node())
	runErr := rec.Run(ctx, pub)
	// A recorded command's exporter flushes its last spans as it exits; give them time
	// to arrive before the bus closes.
	if rec.HasCommand() {
		time.Sleep(ef.Lateness / 2)
	}
	mem.Close()
	// From here a store that keeps failing is given up DrainTimeout later.
	eng.Drain()
	engErr := <-engDone
	causalErr := eng.StopCausal(stderr)

	s := rec.Summary()
	printSummary(stderr, s)
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
