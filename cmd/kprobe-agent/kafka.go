package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/kprobe/kprobe/pipeline/transport/kafka"
)

func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// startProducer creates the topics (best effort: a recorder must start even when Kafka is
// down, buffering until it is back) and runs a producer until stop is called.
//
// A refused login or an unverifiable broker is different: it will not heal by waiting, so it
// stops the command at once.
func startProducer(ctx context.Context, log *slog.Logger, brokers []string, sec kafka.Security, topics []string) (*kafka.Producer, func(w io.Writer) error, error) {
	p, err := kafka.NewProducer(kafka.ProducerOptions{Logger: log, Brokers: brokers, Security: sec})
	if err != nil {
		return nil, nil, err
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = kafka.EnsureTopicsWith(tctx, brokers, sec, topics, 4)
	cancel()
	if errors.Is(err, kafka.ErrAuth) {
		return nil, nil, err
	}
	if err != nil {
		log.Warn("could not create topics; recording anyway and buffering until Kafka answers", "err", err)
	}
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	stop := func(w io.Writer) error {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		closeErr := p.Close(cctx)
		stopRun()
		<-done
		s := p.Stats()
		fmt.Fprintf(w, "kafka: enqueued=%d written=%d dropped=%d (buffer full) discarded=%d write_errors=%d\n",
			s.Enqueued, s.Written, s.Dropped, s.Discarded, s.WriteErrors)
		return closeErr
	}
	return p, stop, nil
}

func prefixed(prefix string, topics ...string) []string {
	out := make([]string, len(topics))
	for i, t := range topics {
		out[i] = prefix + t
	}
	return out
}
