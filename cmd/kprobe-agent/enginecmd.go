package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/kprobe/kprobe/api/live"
	"github.com/kprobe/kprobe/cmd/internal/apiflag"
	"github.com/kprobe/kprobe/cmd/internal/chflag"
	"github.com/kprobe/kprobe/pipeline/correlate"
	"github.com/kprobe/kprobe/pipeline/engine"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/span"
	"github.com/kprobe/kprobe/pipeline/transport/kafka"
)

// runEngine is the server shape: Kafka in, the event log and kernel.enriched out.
func runEngine(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("engine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var brokers, group, spansTopic, clickhouse, data, node, logLevel string
	var of otlpFlags
	var cf causalFlags
	var lateness time.Duration
	var prefix string
	var retention int
	fs.StringVar(&brokers, "kafka", env("KAFKA_BROKERS", ""), "Kafka brokers host:port,... (required)")
	fs.StringVar(&group, "group", env("ENGINE_GROUP", "kprobe-engine"), "Kafka consumer group")
	fs.StringVar(&spansTopic, "spans-topic", env("SPANS_TOPIC", "otlp_spans"), "topic of OTLP protobuf spans, as the OpenTelemetry Collector's Kafka exporter writes them ('' for none)")
	fs.StringVar(&clickhouse, "clickhouse", env("CLICKHOUSE_ADDR", ""), "ClickHouse server host:port for the event log")
	fs.StringVar(&data, "data", env("DATA", ""), "use the embedded event log under this directory instead of --clickhouse")
	of.register(fs)
	cf.register(fs)
	fs.StringVar(&node, "node", env("NODE", ""), "this node's name, given to spans sent from this node without host.name (default: host name)")
	fs.StringVar(&prefix, "topic-prefix", env("TOPIC_PREFIX", ""), "prefix of every Kafka topic name (as given to record)")
	fs.DurationVar(&lateness, "lateness", envDuration("LATENESS", 2*time.Second), "how late a span or event may arrive and still be joined")
	fs.IntVar(&retention, "retention-days", 0, "drop events older than this many days (0: keep)")
	fs.StringVar(&logLevel, "log-level", env("LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	var kafkaSec kafkaSecFlags
	kafkaSec.register(fs)
	var af apiflag.Server
	af.Register(fs, "")
	var chf chflag.Flags
	chf.Register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if brokers == "" {
		return fmt.Errorf("--kafka BROKERS is required (or set KPROBE_KAFKA_BROKERS)")
	}
	if (clickhouse == "") == (data == "") {
		return fmt.Errorf("give exactly one of --clickhouse ADDR or --data DIR for the event log")
	}
	log, err := newLogger(stderr, logLevel)
	if err != nil {
		return err
	}
	bl := splitBrokers(brokers)

	var store *eventlog.Log
	if clickhouse != "" {
		var auth eventlog.ServerAuth
		if auth, err = chf.Auth(); err == nil {
			store, err = eventlog.OpenServer(ctx, clickhouse, eventlog.Options{Logger: log, RetentionDays: retention, Server: auth})
		}
	} else {
		if err = waitForReaders(ctx, log, data, time.Minute); err == nil {
			store, err = eventlog.OpenEmbedded(ctx, eventlog.EmbeddedDir(data), eventlog.Options{Logger: log, RetentionDays: retention})
		}
	}
	if err != nil {
		return err
	}
	defer store.Close()

	topics := prefixed(prefix, event.KernelTopics...)
	if spansTopic != "" {
		spansTopic = prefix + spansTopic
		topics = append(topics, spansTopic)
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	sec, err := kafkaSec.security()
	if err != nil {
		cancel()
		return err
	}
	err = kafka.EnsureTopicsWith(tctx, bl, sec, append(topics, prefixed(prefix, event.TopicEnriched, event.TopicDeadLetter)...), 4)
	cancel()
	if err != nil {
		return err
	}
	cons, err := kafka.NewConsumer(kafka.ConsumerOptions{Logger: log, Brokers: bl, Security: sec, GroupID: group, Topics: topics})
	if err != nil {
		return err
	}
	defer cons.Close()
	prod, stopProd, err := startProducer(ctx, log, bl, sec, nil)
	if err != nil {
		return err
	}
	mapping, err := cf.mapping()
	if err != nil {
		return err
	}
	causalRun, err := startCausal(ctx, log, cf, mapping, data, lateness)
	if err != nil {
		return err
	}
	defer causalRun.stop(nil)
	hub := live.NewHub()
	eng, err := engine.New(engine.Options{Logger: log, Source: cons, Store: live.Tap{W: causalRun.wrap(store), Hub: hub}, Out: prod,
		SpansTopic: spansTopic, TopicPrefix: prefix, Correlate: correlate.Options{Lateness: lateness, BusinessPrefixes: mapping.Prefixes()}})
	if err != nil {
		return err
	}
	ropts, err := of.options(log, nodeName(node))
	if err != nil {
		return err
	}
	ropts.Business = span.Business{Prefixes: mapping.Prefixes()}
	stopOTLP, err := serveOTLP(ctx, ropts, eng.AddSpans)
	if err != nil {
		return err
	}
	svc, err := localService(log, store, causalRun.graph(), mapping)
	if err != nil {
		return err
	}
	api, err := startAPI(ctx, log, af, data, svc, hub, mapping)
	if err != nil {
		return err
	}
	defer api.stop()
	log.Info("engine running", "kafka", brokers, "group", group, "topics", topics)
	runErr := eng.Run(ctx)
	stopOTLP(stderr)
	es := eng.Stats()
	fmt.Fprintf(stderr, "engine: messages=%d events=%d spans=%d written=%d dead_lettered=%d commits=%d joined_tid=%d joined_pid=%d unmatched=%d\n",
		es.Messages, es.Events, es.Spans, es.Written, es.DeadLettered, es.Commits,
		es.Correlator.JoinedTID, es.Correlator.JoinedPID, es.Correlator.Unmatched)
	printJoins(stderr, es.Correlator, lateness)
	stopErr := errors.Join(stopProd(stderr), causalRun.stop(stderr))
	if runErr != nil {
		return runErr
	}
	return stopErr
}
