package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kprobe/kprobe/api/live"
	"github.com/kprobe/kprobe/cmd/internal/apiflag"
	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/correlate"
	"github.com/kprobe/kprobe/pipeline/engine"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/recorder"
	"github.com/kprobe/kprobe/pipeline/span"
)

// runStandalone is the embedded default: record + engine in one process, an in-process
// bus, the event log on the embedded ClickHouse engine under --data.
func runStandalone(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var data string
	var of otlpFlags
	var cf causalFlags
	var af apiflag.Server
	var lateness time.Duration
	var retention int
	fs.StringVar(&data, "data", env("DATA", ""), "directory of the embedded stores (required)")
	of.register(fs)
	cf.register(fs)
	af.Register(fs, "")
	fs.DurationVar(&lateness, "lateness", envDuration("LATENESS", 2*time.Second), "how late a span or event may arrive and still be joined")
	fs.IntVar(&retention, "retention-days", 0, "drop events older than this many days (0: keep)")
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
	if data == "" {
		return fmt.Errorf("--data DIR is required (where the embedded event log is kept)")
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
	if cfg.duration > 0 {
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}

	if err := waitForReaders(ctx, log, data, time.Minute); err != nil {
		return err
	}
	store, err := eventlog.OpenEmbedded(ctx, eventlog.EmbeddedDir(data), eventlog.Options{Logger: log, RetentionDays: retention})
	if err != nil {
		return err
	}
	defer store.Close()

	mapping, err := cf.mapping()
	if err != nil {
		return err
	}
	causalRun, err := startCausal(ctx, log, cf, mapping, data, lateness)
	if err != nil {
		return err
	}
	defer causalRun.stop(nil)
	// Everything the engine writes is also offered to live API subscribers.
	hub := live.NewHub()
	mem := bus.NewMemory(1 << 14)
	eng, err := engine.New(engine.Options{Logger: log, Source: mem, Store: live.Tap{W: causalRun.wrap(store), Hub: hub},
		Correlate: correlate.Options{Lateness: lateness, BusinessPrefixes: mapping.Prefixes()}})
	if err != nil {
		return err
	}
	ropts, err := of.options(log, nodeName(cfg.node))
	if err != nil {
		return err
	}
	ropts.Business = span.Business{Prefixes: mapping.Prefixes()}
	stopOTLP, err := serveOTLP(ctx, ropts, eng.AddSpans)
	if err != nil {
		return err
	}
	otlpStopped := false
	defer func() {
		if !otlpStopped {
			stopOTLP(nil)
		}
	}()
	svc, err := localService(log, store, causalRun.graph(), mapping)
	if err != nil {
		return err
	}
	api, err := startAPI(ctx, log, af, data, svc, hub, mapping)
	if err != nil {
		return err
	}
	defer api.stop()
	engDone := make(chan error, 1)
	// The engine outlives the recording: it drains the bus after the recorder stops.
	go func() { engDone <- eng.Run(context.WithoutCancel(ctx)) }()

	rec, child, err := openRecorder(ctx, cfg, log, stderr)
	if err != nil {
		mem.Close()
		<-engDone
		return err
	}
	defer rec.Close()
	childErr := runChild(child, cancel)
	pub := recorder.NewPublish(mem, 1024, "")
	log.Info("recording", "node", rec.Node())
	runErr := rec.Run(ctx, pub)
	// A recorded command's exporter flushes its last spans as it exits; give them time
	// to arrive before the bus closes.
	if child != nil {
		time.Sleep(lateness / 2)
	}
	mem.Close()
	engErr := <-engDone
	causalErr := causalRun.stop(stderr)

	s := rec.Summary()
	printSummary(stderr, s)
	sent, dropped := pub.Stats()
	es := eng.Stats()
	fmt.Fprintf(stderr, "bus: published=%d dropped=%d\n", sent, dropped+mem.Stats().Dropped)
	fmt.Fprintf(stderr, "engine: spans=%d events=%d written=%d joined_tid=%d joined_pid=%d unmatched=%d\n",
		es.Spans, es.Events, es.Written, es.Correlator.JoinedTID, es.Correlator.JoinedPID, es.Correlator.Unmatched)
	printJoins(stderr, es.Correlator, lateness)
	otlpStopped = true
	stopOTLP(stderr)
	fmt.Fprintf(stderr, "event log: %s\n", eventlog.EmbeddedDir(data))
	api.summary(stderr)

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
