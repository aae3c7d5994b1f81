package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/event"
)

// diskFull is implemented by store errors that say the store's disk is full (the event
// log's, for ENOSPC and ClickHouse's NOT_ENOUGH_SPACE): only freeing space ends those.
type diskFull interface{ DiskFull() bool }

// isDiskFull reports whether err, or an error it wraps, says the disk is full.
func isDiskFull(err error) bool {
	var f diskFull
	return errors.As(err, &f) && f.DiskFull()
}

// retry runs write until it succeeds or ctx ends, backing off: a store that is briefly
// unreachable (or full until someone frees space) delays commits and holds the input back
// (the in-process bus then drops and counts what the recorder publishes; Kafka keeps it).
// Memory stays bounded: the rows held are one batch. ctx is the engine's write context:
// it ends DrainTimeout after a stop, so a store that never comes back cannot hold the
// shutdown. One line is logged per change of state (failing, full, writable again), not
// per attempt.
func (e *Engine) retry(ctx context.Context, what string, n int, write func() error) error {
	backoff := 50 * time.Millisecond
	var since time.Time
	var full bool // the kind of the last failure
	for attempt := 0; ; attempt++ {
		err := write()
		if err == nil {
			if attempt > 0 {
				e.storeFull.Store(false)
				e.log.Info("event log writable again", "what", what, "rows", n, "down_for", time.Since(since).Round(time.Millisecond),
					"attempts", attempt+1)
			}
			return nil
		}
		kind := isDiskFull(err)
		switch {
		case attempt == 0:
			since = time.Now()
		case kind == full:
			e.log.Debug("event log write failed again", "what", what, "attempt", attempt+1, "err", err)
		}
		if attempt == 0 || kind != full {
			e.storeFull.Store(kind)
			if kind {
				e.log.Error("event log write failed: holding the rows and retrying until space is freed; meanwhile new input waits and the recorder drops what does not fit",
					"what", what, "rows", n, "err", err)
			} else {
				e.log.Warn("event log write failed; holding the rows and retrying until it succeeds", "what", what, "rows", n, "err", err)
			}
			full = kind
		}
		if ctx.Err() != nil {
			return fmt.Errorf("writing %d %s: %w", n, what, err)
		}
		e.stats.insertRetries.Add(1)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return fmt.Errorf("gave up writing %d %s %v after the stop (the drain timeout): %w", n, what, e.opts.DrainTimeout, err)
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// write inserts what the correlator emitted (retrying until it is durable or ctx ends),
// publishes it on kernel.enriched, then queues the input it came from for commit.
func (e *Engine) write(ctx context.Context, all bool) error {
	if ss, ok := e.opts.Store.(SpanStore); ok && len(e.spanOut) > 0 {
		if err := e.retry(ctx, "spans", len(e.spanOut), func() error { return ss.InsertSpans(ctx, e.spanOut) }); err != nil {
			return err
		}
		clear(e.spanOut)
		e.spanOut = e.spanOut[:0]
	}
	if len(e.out) > 0 {
		if err := e.retry(ctx, "events", len(e.out), func() error { return e.opts.Store.Insert(ctx, e.out) }); err != nil {
			return err
		}
		e.stats.written.Add(uint64(len(e.out)))
		e.publishEnriched()
		clear(e.out)
		e.out = e.out[:0]
	}
	// Kernel batches are safe once the correlator has emitted past them (everything, after
	// a flush). Span messages are safe only once no future event can join them: a flush
	// does not change that, so after a restart they are read again (and deduplicated).
	wm := e.corr.Watermark()
	markOf := func(topic string) int64 {
		if all && topic != e.opts.SpansTopic {
			return 1<<63 - 1
		}
		return wm
	}
	e.commit.add(e.pend.ready(markOf))
	return nil
}

func (e *Engine) publishEnriched() {
	if e.opts.Out == nil {
		return
	}
	const batch = 1024
	for i := 0; i < len(e.out); i += batch {
		part := e.out[i:min(i+batch, len(e.out))]
		data, err := event.MarshalBatch(part)
		if err != nil || !e.opts.Out.Publish(bus.Message{Topic: e.opts.TopicPrefix + event.TopicEnriched, Key: part[0].Key(), Value: data}) {
			e.stats.enrichedDropped.Add(uint64(len(part)))
		}
	}
}

// Drain tells a running engine that its input is ending: the source reports closed once
// what it holds has been consumed (the in-process bus after the recorder stopped). Writes
// that keep failing from now on are given up DrainTimeout later, as when Run's ctx ends.
// Safe to call from any goroutine, more than once.
func (e *Engine) Drain() { e.drainOnce.Do(func() { close(e.draining) }) }

// writeContext returns the context of every store write and the final commit: it outlives
// ctx (a stop still writes what the engine holds) and ends DrainTimeout after ctx ends or
// Drain is called. stop releases its goroutine.
func (e *Engine) writeContext(ctx context.Context) (wctx context.Context, stop func()) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-e.draining:
		case <-done:
			return
		}
		t := time.NewTimer(e.opts.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-done:
		}
	}()
	return wctx, func() { close(done); cancel() }
}
