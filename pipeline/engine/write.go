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
// shutdown. write reports whether it tried all it could take at once (not an insert cut
// down while the disk is full). n is the rows held, for the log.
func (e *Engine) retry(ctx context.Context, what string, n int, write func() (whole bool, err error)) error {
	backoff := 50 * time.Millisecond
	var last error
	for {
		whole, err := write()
		if err != nil && last != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			// Cut short by the drain timeout: the store's own failure is what to report.
			return fmt.Errorf("gave up writing %d %s %v after the stop (the drain timeout): %w", n, what, e.opts.DrainTimeout, last)
		}
		last = err
		e.note(what, n, whole, err)
		if err == nil {
			return nil
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

// storeState is the store as the engine's writes last found it.
type storeState struct {
	down     bool // the last whole write failed, or a write since
	full     bool // with the disk full
	since    time.Time
	attempts int
}

// note logs a change of the store's state (failing, full, writable again), not every
// attempt: the state outlives one write, so inserts cut down while the disk fills (some
// taken, some not) do not turn one full disk into a line per insert. It is writable
// again once a whole write is taken.
func (e *Engine) note(what string, n int, whole bool, err error) {
	s := &e.store
	if s.down {
		s.attempts++
	}
	switch {
	case err == nil && !s.down:
	case err == nil && !whole:
		e.log.Debug("event log took a smaller insert", "what", what, "held", n)
	case err == nil:
		e.log.Info("event log writable again", "what", what, "rows", n, "down_for", time.Since(s.since).Round(time.Millisecond),
			"attempts", s.attempts)
		*s = storeState{}
		e.storeFull.Store(false)
	case s.down && isDiskFull(err) == s.full:
		e.log.Debug("event log write failed again", "what", what, "attempt", s.attempts, "err", err)
	default:
		if !s.down {
			*s = storeState{down: true, since: time.Now(), attempts: 1}
		}
		s.full = isDiskFull(err)
		e.storeFull.Store(s.full)
		if s.full {
			e.log.Error("event log write failed: holding the rows and retrying until space is freed; meanwhile new input waits and the recorder drops what does not fit",
				"what", what, "rows", n, "err", err)
		} else {
			e.log.Warn("event log write failed; holding the rows and retrying until it succeeds", "what", what, "rows", n, "err", err)
		}
	}
}

// write inserts what the correlator emitted (retrying until it is durable or ctx ends),
// publishes it on kernel.enriched, then queues the input it came from for commit.
func (e *Engine) write(ctx context.Context, all bool) error {
	if ss, ok := e.opts.Store.(SpanStore); ok && len(e.spanOut) > 0 {
		if err := e.retry(ctx, "spans", len(e.spanOut), func() (bool, error) { return true, ss.InsertSpans(ctx, e.spanOut) }); err != nil {
			return err
		}
		clear(e.spanOut)
		e.spanOut = e.spanOut[:0]
	}
	// At most MaxBatch rows per insert, though the correlator may emit far more at once
	// (a forced or idle flush), and fewer while the disk is full (see piece).
	for done := 0; done < len(e.out); {
		var part []event.Event
		err := e.retry(ctx, "events", len(e.out)-done, func() (whole bool, err error) {
			part = e.out[done:min(done+e.piece, len(e.out))]
			whole = len(part) == min(e.opts.MaxBatch, len(e.out)-done)
			err = e.opts.Store.Insert(ctx, part)
			e.resize(err)
			return whole, err
		})
		if err != nil {
			// Only what is not written is held.
			n := copy(e.out, e.out[done:])
			clear(e.out[n:])
			e.out = e.out[:n]
			return err
		}
		e.stats.written.Add(uint64(len(part)))
		e.publishEnriched(part)
		done += len(part)
	}
	clear(e.out)
	e.out = e.out[:0]
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

// minPiece is the fewest rows an insert is cut down to while the disk is full.
const minPiece = 1024

// resize sets the rows of the next insert after one that ended with err. The embedded
// engine reserves room for a whole insert (its uncompressed size, ~14 MiB for 50k events)
// before it writes: on a small or nearly full volume a large insert fails where smaller
// ones still fit, so a full disk halves the inserts (down to minPiece) and each success
// doubles them back (up to MaxBatch). Only what truly does not fit is held.
func (e *Engine) resize(err error) {
	switch {
	case err == nil:
		e.piece = min(e.piece*2, e.opts.MaxBatch)
	case isDiskFull(err):
		e.piece = max(e.piece/2, min(minPiece, e.opts.MaxBatch))
	}
}

func (e *Engine) publishEnriched(out []event.Event) {
	if e.opts.Out == nil {
		return
	}
	const batch = 1024
	for i := 0; i < len(out); i += batch {
		part := out[i:min(i+batch, len(out))]
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
