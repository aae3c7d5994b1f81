package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// ConsumerOptions configures a Consumer. Zero MinBytes, MaxBytes and MaxWait take defaults
// tuned for low latency: 1 byte, 10 MiB, 250 ms.
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
}

// Consumer reads a consumer group's share of Topics. Offsets move only on Commit, so a
// message fetched but not committed is delivered again after a restart or rebalance.
type Consumer struct {
	r *kafkago.Reader
}

// NewConsumer checks opts and builds a Consumer. It connects lazily, on the first Fetch; a
// new group starts at the oldest retained message.
func NewConsumer(opts ConsumerOptions) (*Consumer, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("kafka consumer: no brokers given")
	}
	if opts.GroupID == "" {
		return nil, errors.New("kafka consumer: no group id given")
	}
	if len(opts.Topics) == 0 {
		return nil, errors.New("kafka consumer: no topics given")
	}
	if opts.MinBytes <= 0 {
		opts.MinBytes = 1
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 10 << 20
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 250 * time.Millisecond
	}
	log := orDiscard(opts.Logger).With("component", "kafka-consumer", "group", opts.GroupID)
	dialer, err := opts.Security.dialer(10 * time.Second)
	if err != nil {
		return nil, err
	}
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
		Logger:                kafkaLogger(log, slog.LevelDebug),
		ErrorLogger:           kafkaLogger(log, slog.LevelWarn),
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	return &Consumer{r: kafkago.NewReader(cfg)}, nil
}

// Fetch returns the next message, blocking until one arrives or ctx ends. It does not
// commit: call Commit once the message's effects are durable.
func (c *Consumer) Fetch(ctx context.Context) (Message, error) {
	m, err := c.r.FetchMessage(ctx)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Message{}, ErrClosed
		}
		return Message{}, fmt.Errorf("fetching from kafka: %w", err)
	}
	return Message{Topic: m.Topic, Key: m.Key, Value: m.Value, Offset: m.Offset, Partition: m.Partition}, nil
}

// Commit marks msgs, and everything before them in their partitions, as processed. Only
// Topic, Partition and Offset are used.
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
		return fmt.Errorf("committing kafka offsets: %w", err)
	}
	return nil
}

// Close leaves the group, so its partitions move to other members at once.
func (c *Consumer) Close() error {
	if err := c.r.Close(); err != nil {
		return fmt.Errorf("closing kafka consumer: %w", err)
	}
	return nil
}
