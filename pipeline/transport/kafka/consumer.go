package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// ConsumerOptions configures a Consumer. Zero MinBytes, MaxBytes and MaxWait take defaults:
// 1 byte (a fetch answers as soon as anything arrives, so MaxWait only paces empty polls),
// 10 MiB, 3 s.
type ConsumerOptions struct {
	Logger  *slog.Logger
	Brokers []string
	GroupID string
	Topics  []string
	// Security is TLS and SASL for a secured cluster (zero: plaintext).
	Security Security
	MinBytes int
	MaxBytes int
	MaxWait  time.Duration
	// dial replaces the TCP dialer; tests use it to route through a proxy they can cut.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// withDefaults checks opts and fills in the zero values.
func (o ConsumerOptions) withDefaults() (ConsumerOptions, error) {
	if len(o.Brokers) == 0 {
		return o, errors.New("kafka consumer: no brokers given")
	}
	if o.GroupID == "" {
		return o, errors.New("kafka consumer: no group id given")
	}
	if len(o.Topics) == 0 {
		return o, errors.New("kafka consumer: no topics given")
	}
	o.Logger = orDiscard(o.Logger)
	if o.MinBytes <= 0 {
		o.MinBytes = 1
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 10 << 20
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 3 * time.Second
	}
	// kafka-go gives the broker MaxWait less 1 s (a quarter of MaxWait below 1 s) and reads
	// the answer with a deadline of MaxWait: below 2 s the margin left for the answer to
	// travel is so thin that empty polls over a slow link or from a busy broker time out,
	// drop the connection and log a warning each time.
	o.MaxWait = max(o.MaxWait, 2*time.Second)
	return o, nil
}

// Consumer reads a consumer group's share of Topics. Offsets move only on Commit, so a
// message fetched but not committed is delivered again after a restart or rebalance.
//
// Kafka going away is not an error: Fetch waits (kafka-go redials and rejoins the group on
// its own) and Commit fails until it is back; an outage is logged once when it begins and
// once when it ends.
type Consumer struct {
	r    *kafkago.Reader
	link *link
}

// NewConsumer checks opts and builds a Consumer. It connects lazily, on the first Fetch; a
// new group starts at the oldest retained message.
func NewConsumer(opts ConsumerOptions) (*Consumer, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	log := opts.Logger.With("component", "kafka-consumer", "group", opts.GroupID)
	dialer, err := opts.Security.dialer(10 * time.Second)
	if err != nil {
		return nil, err
	}
	dialer.DialFunc = opts.dial
	l := &link{log: log, brokers: opts.Brokers, grace: outageGrace, transientGrace: transientGrace}
	info, errs := l.loggers(log)
	cfg := kafkago.ReaderConfig{
		Brokers:     opts.Brokers,
		Dialer:      dialer,
		GroupID:     opts.GroupID,
		GroupTopics: opts.Topics,
		MinBytes:    opts.MinBytes,
		MaxBytes:    opts.MaxBytes,
		MaxWait:     opts.MaxWait,
		// Zero means synchronous commits: Commit returns once Kafka has stored the offsets.
		CommitInterval:        0,
		StartOffset:           kafkago.FirstOffset,
		WatchPartitionChanges: true,
		HeartbeatInterval:     time.Second,
		SessionTimeout:        10 * time.Second,
		RebalanceTimeout:      10 * time.Second,
		JoinGroupBackoff:      time.Second,
		ReadBackoffMin:        50 * time.Millisecond,
		ReadBackoffMax:        time.Second,
		Logger:                info,
		ErrorLogger:           errs,
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	return &Consumer{r: kafkago.NewReader(cfg), link: l}, nil
}

// Fetch returns the next message, blocking until one arrives or ctx ends. It does not
// commit: call Commit once the message's effects are durable.
//
// Errors from Kafka (the broker gone, a partition without a leader) are retried with backoff,
// not returned: Fetch returns an error only when ctx ends or the consumer is closed.
func (c *Consumer) Fetch(ctx context.Context) (Message, error) {
	for failures := 1; ; failures++ {
		m, err := c.r.FetchMessage(ctx)
		if err == nil {
			c.link.ok()
			return Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Offset: m.Offset, Partition: m.Partition}, nil
		}
		if ctx.Err() != nil {
			return Message{}, ctx.Err()
		}
		if errors.Is(err, io.EOF) {
			return Message{}, ErrClosed
		}
		c.link.fail(fmt.Errorf("fetching: %w", err))
		select {
		case <-time.After(backoff(failures)):
		case <-ctx.Done():
			return Message{}, ctx.Err()
		}
	}
}

// Commit marks msgs, and everything before them in their partitions, as processed. Only
// Topic, Partition and Offset are used. While Kafka is away (or the group rejoins) it
// blocks until ctx ends: give it a deadline.
func (c *Consumer) Commit(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	km := make([]kafkago.Message, len(msgs))
	for i, m := range msgs {
		km[i] = kafkago.Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	}
	if err := c.r.CommitMessages(ctx, km...); err != nil {
		if errors.Is(err, io.ErrClosedPipe) {
			return ErrClosed
		}
		if ctx.Err() == nil {
			c.link.fail(fmt.Errorf("committing offsets: %w", err))
		}
		return fmt.Errorf("committing kafka offsets: %w", connError(c.link.brokers, err))
	}
	c.link.ok()
	return nil
}

// Close leaves the group, so its partitions move to other members at once.
func (c *Consumer) Close() error {
	err := c.r.Close()
	c.link.close()
	if err != nil {
		return fmt.Errorf("closing kafka consumer: %w", err)
	}
	return nil
}
