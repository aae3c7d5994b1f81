package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// EnsureTopics creates the topics that do not exist yet, with the given number of partitions
// and the cluster's default replication factor, and waits until each has a leader for every
// partition. Existing topics are left as they are.
func EnsureTopics(ctx context.Context, brokers []string, topics []string, partitions int) error {
	return EnsureTopicsWith(ctx, brokers, Security{}, topics, partitions)
}

// EnsureTopicsWith is EnsureTopics on a secured cluster. A refused login or a failed TLS
// handshake is an error wrapping ErrAuth: it says what to check, at once.
func EnsureTopicsWith(ctx context.Context, brokers []string, sec Security, topics []string, partitions int) error {
	if len(brokers) == 0 {
		return errors.New("ensuring kafka topics: no brokers given")
	}
	if partitions <= 0 {
		return fmt.Errorf("ensuring kafka topics: %d partitions", partitions)
	}
	topics = slices.Compact(slices.Sorted(slices.Values(topics)))
	if len(topics) == 0 {
		// An empty metadata request means "all topics": nothing to create or wait for.
		return nil
	}
	for _, t := range topics {
		if !validTopic(t) {
			return fmt.Errorf("ensuring kafka topics: invalid topic name %q", t)
		}
	}
	if err := reachable(ctx, brokers); err != nil {
		return fmt.Errorf("ensuring kafka topics: %w", err)
	}
	if err := sec.login(ctx, brokers); err != nil {
		return fmt.Errorf("ensuring kafka topics: %w", err)
	}
	transport, err := sec.transport(5 * time.Second)
	if err != nil {
		return err
	}
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...), Timeout: ioTimeout, Transport: transport}
	defer transport.CloseIdleConnections()

	req := &kafkago.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafkago.TopicConfig{
			Topic:             t,
			NumPartitions:     partitions,
			ReplicationFactor: -1, // the broker's default.replication.factor
		})
	}
	res, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("creating kafka topics: %w", authError(sec.Username, connError(brokers, err)))
	}
	for t, err := range res.Errors {
		if err != nil && !errors.Is(err, kafkago.TopicAlreadyExists) {
			return fmt.Errorf("creating kafka topic %s: %w", t, err)
		}
	}
	return waitForLeaders(ctx, client, topics)
}

// reachable dials the brokers so that "nothing is listening" gets a clear error naming the
// fix; kafka-go reports it as an unrelated protocol error.
func reachable(ctx context.Context, brokers []string) error {
	var d net.Dialer
	var err error
	for _, b := range brokers {
		var c net.Conn
		if c, err = d.DialContext(ctx, "tcp", b); err == nil {
			c.Close()
			return nil
		}
	}
	return connError(brokers, err)
}

// waitForLeaders waits until every partition of topics answers on its leader. A new topic's
// partitions appear in metadata a moment before the broker acts as their leader, and writes
// in between fail with NotLeaderForPartition; asking each leader for offsets covers both.
func waitForLeaders(ctx context.Context, client *kafkago.Client, topics []string) error {
	for {
		md, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: topics})
		if err == nil && allLed(md, len(topics)) {
			if err = offsetsReady(ctx, client, md); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return fmt.Errorf("waiting for kafka topic leaders: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func offsetsReady(ctx context.Context, client *kafkago.Client, md *kafkago.MetadataResponse) error {
	req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
	for _, t := range md.Topics {
		for _, p := range t.Partitions {
			req.Topics[t.Name] = append(req.Topics[t.Name], kafkago.FirstOffsetOf(p.ID))
		}
	}
	res, err := client.ListOffsets(ctx, req)
	if err != nil {
		return err
	}
	for _, parts := range res.Topics {
		for _, p := range parts {
			if p.Error != nil {
				return p.Error
			}
		}
	}
	return nil
}

func allLed(md *kafkago.MetadataResponse, want int) bool {
	if len(md.Topics) != want {
		return false
	}
	for _, t := range md.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			return false
		}
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.ID < 0 || p.Leader.Host == "" {
				return false
			}
		}
	}
	return true
}
