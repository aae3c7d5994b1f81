package bpf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// Run reads the ring buffer until ctx is done or Close is called, decoding
// samples into batches on the queue. It never blocks the ring buffer: a
// batch that does not fit in the queue is dropped and counted. Batches is
// closed when Run returns.
func (p *Probes) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.started || p.closed {
		p.mu.Unlock()
		return errors.New("bpf: recorder already running or closed")
	}
	p.started = true
	p.mu.Unlock()
	defer close(p.batches)

	// Once ctx is done, Run drains what the ring holds at that moment and
	// returns: on a busy node producers may never let the ring run empty,
	// which is when the reader reports ErrFlushed. Flush wakes a blocked read.
	var stopping atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		stopping.Store(true)
		_ = p.rd.Flush()
	})
	defer stop()
	drain := int64(-1) // ring bytes left to read once stopping; -1: not measured yet

	var (
		rec ringbuf.Record
		// Decode into a scratch batch of capacity maxBatch. A full (or
		// large) batch is handed out as is and replaced by one the
		// consumer gave back through Release, so at steady load the
		// reader allocates nothing. A small batch (flushed by the deadline
		// at low rates) is copied out at its exact size when no released
		// batch is at hand, so a consumer that never calls Release does not
		// turn every flush into a maxBatch-event allocation.
		batch  = p.getBatch()
		counts [numEventTypes]uint64
	)
	push := func() {
		if len(batch) == 0 {
			return
		}
		for t, n := range counts {
			if n > 0 {
				p.received[t].Add(n)
				counts[t] = 0
			}
		}
		var out, next []Event
		select {
		case next = <-p.free:
			out = batch
		default:
			if len(batch) < maxBatch/4 {
				out = make([]Event, len(batch))
				copy(out, batch)
			} else {
				out, next = batch, make([]Event, 0, maxBatch)
			}
		}
		select {
		case p.batches <- out:
		default:
			p.queueDropped.Add(uint64(len(out)))
			p.droppedBatch.Add(1)
			if next != nil && cap(out) == maxBatch {
				p.Release(next) // keep the dropped batch: nobody else holds it
				next = out
			}
		}
		if next == nil { // out was a copy: the scratch batch stays ours
			clear(batch) // drop references (payloads) it holds
			next = batch
		}
		batch = next[:0]
	}

	p.rd.SetDeadline(time.Now().Add(flushInterval))
	for {
		if drain == 0 {
			push()
			return nil
		}
		err := p.rd.ReadInto(&rec)
		switch {
		case err == nil:
			if stopping.Load() {
				if drain < 0 {
					drain = p.backlog() + ringRecordSize(len(rec.RawSample))
				}
				drain = max(drain-ringRecordSize(len(rec.RawSample)), 0)
			}
			batch = batch[:len(batch)+1]
			e := &batch[len(batch)-1]
			// A recycled event's payload may still be referenced
			// downstream: never let Decode write into it.
			e.Payload = nil
			if derr := Decode(rec.RawSample, e); derr != nil {
				p.decodeErrors.Add(1)
				batch = batch[:len(batch)-1]
				continue
			}
			if restartedSyscall(e) {
				p.restarted.Add(1)
				batch = batch[:len(batch)-1]
				continue
			}
			counts[e.Type]++
			if len(batch) == maxBatch {
				push()
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			// Wakeups are batched in the kernel; the deadline bounds latency.
			push()
			p.rd.SetDeadline(time.Now().Add(flushInterval))
		case errors.Is(err, ringbuf.ErrFlushed):
			push()
			if ctx.Err() != nil {
				return nil
			}
		case errors.Is(err, ringbuf.ErrClosed):
			push()
			return nil
		default:
			push()
			return fmt.Errorf("reading ring buffer: %w", err)
		}
	}
}

// backlog is how many bytes the ring holds (records and their headers).
func (p *Probes) backlog() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed { // Close may have released the ring already
		return 0
	}
	return int64(p.rd.AvailableBytes())
}

// ringRecordSize is the room a sample of n bytes takes in the ring: an
// 8-byte header, rounded up to 8 bytes.
func ringRecordSize(n int) int64 {
	return int64(n+8+7) &^ 7
}

// Batches delivers decoded events. It is closed when Run returns (or by
// Close, if Run never started). A consumer done with a batch may hand it
// back with Release.
func (p *Probes) Batches() <-chan []Event { return p.batches }

// Release gives a batch received from Batches back to the recorder for
// reuse; the caller must not touch the batch (its Event values) afterwards.
// Payload slices of its events are not reused and stay valid. Calling
// Release is optional: it saves the reader an allocation per batch. It never
// blocks.
func (p *Probes) Release(batch []Event) {
	if cap(batch) != maxBatch {
		return // an exact-size copy: not worth keeping
	}
	for i := range batch {
		if batch[i].Payload != nil {
			batch[i].Payload = nil // do not keep payloads alive in the free list
		}
	}
	select {
	case p.free <- batch[:0]:
	default:
	}
}

// getBatch returns an empty batch of capacity maxBatch, released or new.
func (p *Probes) getBatch() []Event {
	select {
	case b := <-p.free:
		return b
	default:
		return make([]Event, 0, maxBatch)
	}
}

// restartedSyscall reports a read/write whose result is one of the kernel's internal
// restart codes (ERESTARTSYS 512, ERESTARTNOINTR 513, ERESTARTNOHAND 514,
// ERESTART_RESTARTBLOCK 516): a signal interrupted it and the kernel runs it again (or
// turns the code into EINTR, which the sched_switch and the next attempt still show).
func restartedSyscall(e *Event) bool {
	if e.Type != EventRead && e.Type != EventWrite {
		return false
	}
	switch e.Errno {
	case 512, 513, 514, 516:
		return true
	}
	return false
}
