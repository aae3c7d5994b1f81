package bpf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"
)

// The path from the ring buffer to Batches has two stages. The reader (Run)
// only validates and copies each sample into a chunk of raw bytes: it stays
// ahead of the kernel, which drops what does not fit in the ring. Chunks
// wait in a queue of up to BufferBytes, compact and free of pointers (the
// garbage collector never scans them), for the decoder, which turns them
// into batches of Events and hands those to the consumer at the consumer's
// pace. A consumer slower than the kernel, for a while (a burst) or because
// its output stalls, is absorbed by that queue; a chunk that does not fit is
// dropped and counted.

const (
	chunkBytes = 1 << 20 // ~5,400 events without payload
	freeChunks = 8       // chunks kept for reuse; the rest go back to the heap
	frameHdr   = 4       // a sample's length, before it in a chunk
)

// rawChunk is raw samples, each after its length.
type rawChunk struct {
	buf    []byte
	events uint64
}

// Run reads the ring buffer until ctx is done or Close is called, queueing
// samples for the decoder, which delivers them on Batches. It never blocks
// the ring buffer: what does not fit in the queue is dropped and counted.
// Once ctx is done, Run reads what the ring holds at that moment and
// returns; Batches is closed once the decoder has delivered everything Run
// read (or dropped it, counted, after Close).
func (p *Probes) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.started || p.closed {
		p.mu.Unlock()
		return errors.New("bpf: probes already running or closed")
	}
	p.started = true
	p.mu.Unlock()
	go p.decode()
	defer close(p.raw)
	return p.read(ctx)
}

func (p *Probes) read(ctx context.Context) error {
	// On a busy node producers may never let the ring run empty, which is
	// when the reader reports ErrFlushed: after ctx is done, read only what
	// the ring held then. Flush wakes a blocked read.
	var stopping atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		stopping.Store(true)
		_ = p.rd.Flush()
	})
	defer stop()
	drain := int64(-1) // ring bytes left to read once stopping; -1: not measured yet

	var (
		rec    ringbuf.Record
		cur    = rawChunk{buf: p.getChunk()}
		counts [numEventTypes]uint64
	)
	push := func() {
		if cur.events == 0 {
			return
		}
		for t, n := range counts {
			if n > 0 {
				p.received[t].Add(n)
				counts[t] = 0
			}
		}
		select {
		case p.raw <- cur:
			cur = rawChunk{buf: p.getChunk()}
		default:
			p.queueDropped.Add(cur.events)
			p.droppedBatch.Add(1)
			cur = rawChunk{buf: cur.buf[:0]}
		}
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
			raw := rec.RawSample
			if stopping.Load() {
				if drain < 0 {
					drain = p.backlog() + ringRecordSize(len(raw))
				}
				drain = max(drain-ringRecordSize(len(raw)), 0)
			}
			typ, derr := checkSample(raw)
			if derr != nil {
				p.decodeErrors.Add(1)
				continue
			}
			if restartedSample(typ, raw) {
				p.restarted.Add(1)
				continue
			}
			if len(cur.buf)+frameHdr+len(raw) > cap(cur.buf) {
				push()
			}
			cur.buf = binary.LittleEndian.AppendUint32(cur.buf, uint32(len(raw)))
			cur.buf = append(cur.buf, raw...)
			cur.events++
			counts[typ]++
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

// decode turns queued chunks into batches on Batches, waiting for the
// consumer; after Close it drops (and counts) what is left.
func (p *Probes) decode() {
	defer close(p.batches)
	// Decode into a scratch batch of capacity maxBatch. A full (or large)
	// batch is handed out as is and replaced by one the consumer gave back
	// through Release, so at steady load the decoder allocates nothing. A
	// small batch (at low rates) is copied out at its exact size when no
	// released batch is at hand, so a consumer that never calls Release does
	// not turn every chunk into a maxBatch-event allocation.
	batch := p.getBatch()
	push := func() {
		if len(batch) == 0 {
			return
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
		case <-p.closing:
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
	for c := range p.raw {
		select {
		case <-p.closing:
			// Closed: what is still queued would only be decoded to be dropped, which on
			// a backlog of the whole queue takes seconds a bounded stop does not have.
			p.queueDropped.Add(c.events)
			p.droppedBatch.Add(1)
			p.putChunk(c.buf)
			continue
		default:
		}
		for b := c.buf; len(b) > 0; {
			n := int(binary.LittleEndian.Uint32(b))
			raw := b[frameHdr : frameHdr+n]
			b = b[frameHdr+n:]
			batch = batch[:len(batch)+1]
			e := &batch[len(batch)-1]
			// A recycled event's payload may still be referenced
			// downstream: never let Decode write into it.
			e.Payload = nil
			if err := Decode(raw, e); err != nil { // checked by the reader: unreachable
				p.decodeErrors.Add(1)
				batch = batch[:len(batch)-1]
				continue
			}
			if len(batch) == maxBatch {
				push()
			}
		}
		p.putChunk(c.buf)
		if len(p.raw) == 0 {
			push() // nothing more waiting: deliver what we have
		}
	}
	push()
}

// Flush hands what the reader has read so far to the decoder now, rather
// than at the next flush deadline (every 100 ms when the ring is quiet).
func (p *Probes) Flush() error {
	return p.rd.Flush()
}

// getChunk returns an empty chunk, reused or new.
func (p *Probes) getChunk() []byte {
	select {
	case b := <-p.freeRaw:
		return b[:0]
	default:
		return make([]byte, 0, chunkBytes)
	}
}

func (p *Probes) putChunk(b []byte) {
	select {
	case p.freeRaw <- b:
	default:
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

// Batches delivers decoded events. It is closed once everything Run read is
// delivered (or by Close, if Run never started). A consumer done with a
// batch may hand it back with Release.
func (p *Probes) Batches() <-chan []Event { return p.batches }

// Release gives a batch received from Batches back to the probes for reuse;
// the caller must not touch the batch (its Event values) afterwards. Payload
// slices of its events are not reused and stay valid. Calling Release is
// optional: it saves the decoder an allocation per batch. It never blocks.
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
