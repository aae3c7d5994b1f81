package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kprobe/kprobe/pipeline/bus"
)

// commitAttempt bounds one commit: a Kafka consumer's Commit blocks while the broker is
// away or the group rejoins.
const commitAttempt = 10 * time.Second

// committer commits input offsets off the engine's path. Kafka may be away for minutes;
// meanwhile the engine goes on writing what it holds and the commits trail behind, the
// newest offset of each partition replacing the older ones that are still waiting.
type committer struct {
	src     bus.Source
	log     *slog.Logger
	commits *atomic.Uint64
	retries *atomic.Uint64

	mu   sync.Mutex
	want map[partKey]bus.Message
	kick chan struct{}
}

func newCommitter(src bus.Source, log *slog.Logger, commits, retries *atomic.Uint64) *committer {
	return &committer{src: src, log: log, commits: commits, retries: retries,
		want: map[partKey]bus.Message{}, kick: make(chan struct{}, 1)}
}

// add queues msgs for commit (each commits its partition up to and including itself)
// without waiting for it.
func (c *committer) add(msgs []bus.Message) {
	if len(msgs) == 0 {
		return
	}
	c.mu.Lock()
	for _, m := range msgs {
		k := partKey{m.Topic, m.Partition}
		if cur, ok := c.want[k]; !ok || m.Offset > cur.Offset {
			c.want[k] = m
		}
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// run commits what add queues until ctx ends, retrying failures with backoff.
func (c *committer) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		if err := c.flush(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("giving up committing offsets: the input is read again at the next start", "err", err)
		}
	}
}

// flush commits everything queued, retrying with backoff until it is done, ctx ends or the
// source is closed. The source logs its own outages: a failed attempt is only counted.
func (c *committer) flush(ctx context.Context) error {
	backoff := 50 * time.Millisecond
	for {
		err := c.commitOnce(ctx)
		if err == nil || errors.Is(err, bus.ErrClosed) {
			return err
		}
		c.retries.Add(1)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return err
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (c *committer) commitOnce(ctx context.Context) error {
	c.mu.Lock()
	msgs := make([]bus.Message, 0, len(c.want))
	for _, m := range c.want {
		msgs = append(msgs, m)
	}
	c.mu.Unlock()
	if len(msgs) == 0 {
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, commitAttempt)
	err := c.src.Commit(actx, msgs...)
	cancel()
	if err != nil {
		return fmt.Errorf("committing offsets: %w", err)
	}
	c.mu.Lock()
	for _, m := range msgs {
		k := partKey{m.Topic, m.Partition}
		if c.want[k].Offset == m.Offset { // not replaced by a newer one meanwhile
			delete(c.want, k)
		}
	}
	c.mu.Unlock()
	c.commits.Add(uint64(len(msgs)))
	return nil
}

// waiting is how many partitions have offsets not yet committed.
func (c *committer) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.want)
}
