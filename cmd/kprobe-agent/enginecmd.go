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
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/transport/kafka"
)

// runEngine is the server shape: Kafka in, the event log and kernel.enriched out.
func runEngine(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kprobe-agent engine", flag.ContinueOnError)
	var brokers, group, spansTopic, node, logLevel string
	var ef wire.EngineFlags
	var prefix string
	fs.StringVar(&brokers, "kafka", env("KAFKA_BROKERS", ""), "Kafka brokers host:port,... (required)")
	fs.StringVar(&group, "group", env("ENGINE_GROUP", "kprobe-engine"), "Kafka consumer group")
	fs.StringVar(&spansTopic, "spans-topic", env("SPANS_TOPIC", "otlp_spans"), "topic of OTLP protobuf spans, as the OpenTelemetry Collector's Kafka exporter writes them ('' for none)")
	ef.Register(fs, wire.Cluster)
	fs.StringVar(&node, "node", env("NODE", ""), "this node's name, given to spans sent from this node without host.name (default: host name)")
	fs.StringVar(&prefix, "topic-prefix", env("TOPIC_PREFIX", ""), "prefix of every Kafka topic name (as given to record)")
	fs.StringVar(&logLevel, "log-level", env("LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	var kafkaSec kafkaSecFlags
	kafkaSec.register(fs)
	if err := cli.Parse(fs, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if brokers == "" {
		return fmt.Errorf("--kafka BROKERS is required (or set KPROBE_KAFKA_BROKERS)")
	}
	if err := ef.Check(); err != nil {
		return err
	}
	log, err := newLogger(stderr, logLevel)
	if err != nil {
		return err
	}
	bl := splitBrokers(brokers)

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
	eng, err := wire.StartEngine(ctx, ef, wire.EngineOptions{Logger: log, Source: cons, Out: prod,
		SpansTopic: spansTopic, TopicPrefix: prefix, Node: wire.NodeName(node)})
	if err != nil {
		stopProd(io.Discard)
		return err
	}
	defer eng.Close()
	log.Info("engine running", "kafka", brokers, "group", group, "topics", topics)
	runErr := eng.Run(ctx)
	eng.StopOTLP(stderr)
	es := eng.Stats()
	fmt.Fprintf(stderr, "engine: messages=%d events=%d spans=%d written=%d dead_lettered=%d commits=%d joined_tid=%d joined_pid=%d unmatched=%d\n",
		es.Messages, es.Events, es.Spans, es.Written, es.DeadLettered, es.Commits,
		es.Correlator.JoinedTID, es.Correlator.JoinedPID, es.Correlator.Unmatched)
	printJoins(stderr, es.Correlator, ef.Lateness)
	stopErr := errors.Join(stopProd(stderr), eng.StopCausal(stderr))
	if runErr != nil {
		return runErr
	}
	return stopErr
}
