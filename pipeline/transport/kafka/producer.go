package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

const (
	defaultBufferMessages = 100_000
	defaultBatchSize      = 1000
	// kafka-go waits up to 1 s to fill a batch; at a few thousand events a second that is
	// pure latency, so the producer waits only a few milliseconds for more messages.
	defaultBatchTimeout = 5 * time.Millisecond
	// The producer hands kafka-go whole batches, so kafka-go's own per-partition timer only
	// has to outlast the loop that spreads one batch over the partitions.
	writerLinger = 500 * time.Microsecond
	backoffMin   = 100 * time.Millisecond
	backoffMax   = 5 * time.Second
	ioTimeout    = 10 * time.Second
)

// ProducerOptions configures a Producer. Zero values take the defaults above.
type ProducerOptions struct {
	Logger  *slog.Logger
	Brokers []string
	// Security is TLS and SASL for a secured cluster (zero: plaintext).
	Security Security
	// BufferMessages bounds the messages held in memory, queued or being written. When it is
	// full, Publish drops and counts.
	BufferMessages int
	BatchSize      int
	// BatchTimeout is how long a partial batch waits for more messages before it is sent.
	BatchTimeout time.Duration

	// dial replaces the TCP dialer; tests use it to route through a proxy they can cut.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ProducerStats counts what happened to published messages. Once the producer is idle,
// Enqueued == Written + Discarded + Buffered.
type ProducerStats struct {
	Enqueued    uint64 // accepted by Publish
	Written     uint64 // acknowledged by Kafka
	Dropped     uint64 // refused by Publish: buffer full, producer closed, or invalid topic name
	Discarded   uint64 // accepted but given up: rejected by Kafka for good, or unflushed at Close
	WriteErrors uint64 // failed write attempts (each is retried unless the error is permanent)
	Buffered    int    // held now, queued or in flight
}

// Producer publishes messages to Kafka from a bounded in-memory buffer. Publish never
// blocks; Run does the writing.
type Producer struct {
	log          *slog.Logger
	brokers      []string
	w            *kafkago.Writer
	q            *queue
	batchSize    int
	batchTimeout time.Duration

	// pending is the batch being written; it is touched only by whoever holds runSem.
	pending []kafkago.Message
	runSem  chan struct{}
	running atomic.Bool

	closed    atomic.Bool
	stop      chan struct{}
	closeOnce sync.Once

	enqueued, written, dropped, discarded, writeErrors atomic.Uint64
}

// NewProducer checks opts and builds a Producer. It does no I/O: an absent broker shows up as
// write errors in Run, while Publish keeps buffering.
func NewProducer(opts ProducerOptions) (*Producer, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("kafka producer: no brokers given")
	}
	if opts.BufferMessages <= 0 {
		opts.BufferMessages = defaultBufferMessages
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = defaultBatchSize
	}
	if opts.BatchTimeout <= 0 {
		opts.BatchTimeout = defaultBatchTimeout
	}
	log := orDiscard(opts.Logger).With("component", "kafka-producer")

	transport, err := opts.Security.transport(5 * time.Second)
	if err != nil {
		return nil, err
	}
	transport.Dial = opts.dial
	transport.MetadataTTL = 10 * time.Second
	w := &kafkago.Writer{
		Addr: kafkago.TCP(opts.Brokers...),
		// Hash keeps every message of one key in one partition, so their order survives.
		Balancer:     &kafkago.Hash{},
		BatchSize:    opts.BatchSize,
		BatchTimeout: writerLinger,
		RequiredAcks: kafkago.RequireAll,
		// No compression: on the 2-core build machines, snappy and lz4 (1.8x on event-like
		// values) cost the agent more CPU than they save; BenchmarkProduce measured about
		// 95k msgs/s uncompressed against 55k with snappy and 60k with lz4.
		Compression: 0,
		// One attempt per call: retrying is the producer's job, so that it can keep the
		// failed messages, back off and stop promptly on Close.
		MaxAttempts:            1,
		ReadTimeout:            ioTimeout,
		WriteTimeout:           ioTimeout,
		AllowAutoTopicCreation: true,
		Transport:              transport,
		Logger:                 kafkaLogger(log, slog.LevelDebug),
	}
	return &Producer{
		log:          log,
		brokers:      opts.Brokers,
		w:            w,
		q:            newQueue(opts.BufferMessages),
		batchSize:    opts.BatchSize,
		batchTimeout: opts.BatchTimeout,
		pending:      make([]kafkago.Message, 0, opts.BatchSize),
		runSem:       make(chan struct{}, 1),
		stop:         make(chan struct{}),
	}, nil
}

// Publish queues m for writing and reports whether it was accepted. It never blocks: when
// the buffer is full, the producer is closed or m.Topic is not a legal topic name, m is
// dropped and counted.
func (p *Producer) Publish(m Message) bool {
	if p.closed.Load() {
		p.dropped.Add(1)
		return false
	}
	if !validTopic(m.Topic) {
		p.dropped.Add(1)
		return false
	}
	if !p.q.offer(m) {
		p.dropped.Add(1)
		return false
	}
	p.enqueued.Add(1)
	return true
}

// Stats returns the counters so far.
func (p *Producer) Stats() ProducerStats {
	return ProducerStats{
		Enqueued:    p.enqueued.Load(),
		Written:     p.written.Load(),
		Dropped:     p.dropped.Load(),
		Discarded:   p.discarded.Load(),
		WriteErrors: p.writeErrors.Load(),
		Buffered:    p.q.len(),
	}
}

// Run writes batches until ctx ends or Close is called, retrying with backoff while Kafka is
// unreachable. Messages not yet written stay buffered for a later Run or for Close to flush.
// A write cut short by ctx may still land in Kafka, so a flush can duplicate it: delivery
// is at least once.
func (p *Producer) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("kafka producer: Run called twice")
	}
	defer p.running.Store(false)
	// Close may hold the pending batch while it flushes; after Close there is nothing to run.
	select {
	case p.runSem <- struct{}{}:
	case <-p.stop:
		return nil
	case <-ctx.Done():
		return nil
	}
	defer func() { <-p.runSem }()
	if p.stopping() {
		return nil
	}

	var (
		failures  int
		downSince time.Time
	)
	for {
		if len(p.pending) == 0 && !p.collect(ctx) {
			return nil
		}
		if ctx.Err() != nil || p.stopping() {
			return nil
		}
		err := p.writePending(ctx)
		if err == nil {
			if failures > 0 {
				p.log.Info("kafka reachable again", "down_for", time.Since(downSince).Round(time.Millisecond),
					"failed_attempts", failures, "buffered", p.q.len())
			}
			failures = 0
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if len(p.pending) == 0 {
			continue // everything left was rejected for good: nothing to retry
		}
		if failures == 0 {
			downSince = time.Now()
		}
		failures++
		// Log the first failure and then sparsely: the broker may be gone for hours.
		if failures == 1 || failures%20 == 0 {
			p.log.Warn("writing to kafka failed; buffering and retrying", "err", connError(p.brokers, err),
				"attempt", failures, "buffered", p.q.len())
		}
		if !sleep(ctx, backoff(failures), p.stop) {
			return nil
		}
	}
}

// collect waits for a first message, then takes more until the batch is full or
// batchTimeout passes. It returns false when it stops with nothing collected.
func (p *Producer) collect(ctx context.Context) bool {
	select {
	case m := <-p.q.ch:
		p.pending = append(p.pending, toWriter(m))
	case <-ctx.Done():
		return false
	case <-p.stop:
		return false
	}
	timer := time.NewTimer(p.batchTimeout)
	defer timer.Stop()
	for len(p.pending) < p.batchSize {
		// Take what is already queued without touching the timer: under load batches fill
		// from the backlog and never wait.
		select {
		case m := <-p.q.ch:
			p.pending = append(p.pending, toWriter(m))
			continue
		default:
		}
		select {
		case m := <-p.q.ch:
			p.pending = append(p.pending, toWriter(m))
		case <-timer.C:
			return true
		case <-ctx.Done():
			return true
		case <-p.stop:
			return true
		}
	}
	return true
}

// writePending makes one attempt at writing p.pending. Messages written or permanently
// rejected leave pending; the rest stay, in order, for the next attempt.
func (p *Producer) writePending(ctx context.Context) error {
	werr := p.w.WriteMessages(ctx, p.pending...)
	if werr == nil {
		p.written.Add(uint64(len(p.pending)))
		p.q.release(len(p.pending))
		p.pending = p.pending[:0]
		return nil
	}
	p.writeErrors.Add(1)
	err := werr

	var perMsg kafkago.WriteErrors
	var tooLarge kafkago.MessageTooLargeError
	switch {
	case errors.As(werr, &perMsg) && len(perMsg) == len(p.pending):
		err = summarize(perMsg)
		kept := p.pending[:0]
		var written, given int
		var firstPermanent error
		for i, m := range p.pending {
			switch e := perMsg[i]; {
			case e == nil:
				written++
			case retryable(e):
				// Retry these in order before anything newer, so per-key order holds.
				kept = append(kept, m)
			default:
				given++
				if firstPermanent == nil {
					firstPermanent = e
				}
			}
		}
		clear(p.pending[len(kept):])
		p.pending = kept
		p.written.Add(uint64(written))
		p.discard(given, firstPermanent)
		p.q.release(written)
	case errors.As(err, &tooLarge):
		// kafka-go refuses the whole call for one oversized message; drop just that one.
		p.discard(1, err)
		p.pending = append(p.pending[:0], tooLarge.Remaining...)
	case !retryable(err):
		p.discard(len(p.pending), err)
		p.pending = p.pending[:0]
	}
	return err
}

func (p *Producer) discard(n int, err error) {
	if n == 0 {
		return
	}
	p.discarded.Add(uint64(n))
	p.q.release(n)
	p.log.Error("kafka rejected messages; discarding them", "count", n, "err", err)
}

// Close stops Publish, stops Run, and writes what is still buffered until ctx ends. Messages
// it cannot write in time are counted as Discarded and reported in the error.
func (p *Producer) Close(ctx context.Context) error {
	p.closed.Store(true)
	p.closeOnce.Do(func() { close(p.stop) })

	// Wait for Run to let go of the pending batch. Run stops at its next wait, or after the
	// write in progress (bounded by ioTimeout).
	select {
	case p.runSem <- struct{}{}:
	default:
		select {
		case p.runSem <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("closing kafka producer: waiting for the writer: %w", ctx.Err())
		}
	}
	defer func() { <-p.runSem }()

	flushErr := p.flush(ctx)
	if err := p.w.Close(); err != nil && flushErr == nil {
		return fmt.Errorf("closing kafka writer: %w", err)
	}
	return flushErr
}

func (p *Producer) flush(ctx context.Context) error {
	var err error
	for failures := 0; ; {
		// Publish is closed, so the channel only shrinks.
		for len(p.pending) < p.batchSize && len(p.q.ch) > 0 {
			p.pending = append(p.pending, toWriter(<-p.q.ch))
		}
		if len(p.pending) == 0 {
			return nil
		}
		if err = ctx.Err(); err != nil {
			break
		}
		if err = p.writePending(ctx); err == nil {
			failures = 0
			continue
		}
		failures++
		if !sleep(ctx, backoff(failures), nil) {
			break
		}
	}
	lost := len(p.pending) + len(p.q.ch)
	p.discarded.Add(uint64(lost))
	p.q.release(lost)
	p.pending = p.pending[:0]
	for len(p.q.ch) > 0 {
		<-p.q.ch
	}
	return fmt.Errorf("flushing kafka producer: %d messages not written: %w", lost, connError(p.brokers, err))
}

func (p *Producer) stopping() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// sleep waits d and reports false if ctx ended or stop closed first.
func sleep(ctx context.Context, d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

// backoff grows exponentially from backoffMin to backoffMax with ±25% jitter, so many agents
// do not reconnect to a recovering broker in lockstep.
func backoff(attempt int) time.Duration {
	d := backoffMin
	for i := 1; i < attempt && d < backoffMax; i++ {
		d *= 2
	}
	d = min(d, backoffMax)
	return d - d/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// summarize shortens kafka-go's per-message errors, which repeat one error per message, to a
// count and the first error.
func summarize(errs kafkago.WriteErrors) error {
	var first error
	for _, e := range errs {
		if e != nil {
			first = e
			break
		}
	}
	if first == nil {
		return nil
	}
	return fmt.Errorf("%d of %d messages not written: %w", errs.Count(), len(errs), first)
}

func toWriter(m Message) kafkago.Message {
	return kafkago.Message{Topic: m.Topic, Key: m.Key, Value: m.Value}
}
