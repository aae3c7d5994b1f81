package bus

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// Message is one record on a topic. Partition and Offset are set by sources.
type Message struct {
	Topic     string
	Key       []byte
	Value     []byte
	Partition int
	Offset    int64
}

// Publisher takes messages without ever blocking the caller (the caller drains a BPF ring
// buffer): when it cannot take one it returns false and counts the drop.
type Publisher interface {
	Publish(m Message) bool
}

// Source yields messages in order per partition; Commit marks everything up to and
// including the given messages of their partitions as durably processed.
type Source interface {
	Fetch(ctx context.Context) (Message, error)
	Commit(ctx context.Context, msgs ...Message) error
}

// ErrClosed is returned by Fetch once a closed Memory bus is drained.
var ErrClosed = errors.New("bus closed")

// Memory is the in-process bus: one bounded queue, drop-and-count when full. Nothing
// outlives the process, so Commit only records progress (for tests and stats).
type Memory struct {
	ch        chan Message
	mu        sync.Mutex
	closed    bool
	next      int64
	published atomic.Uint64
	dropped   atomic.Uint64
	committed atomic.Int64
	maxBytes  int64        // of queued values; 0: no limit but the count
	queued    atomic.Int64 // bytes of the values queued
}

// NewMemory returns a bus holding at most capacity undelivered messages.
func NewMemory(capacity int) *Memory {
	if capacity <= 0 {
		capacity = 4096
	}
	return &Memory{ch: make(chan Message, capacity), committed: atomic.Int64{}}
}

// LimitBytes bounds the bytes of the values queued as well as their number: a consumer
// that stalls (a store that is full) then holds at most n bytes here, whatever the
// messages' sizes. Call it before the first Publish.
func (b *Memory) LimitBytes(n int64) *Memory {
	b.maxBytes = n
	return b
}

// Publish enqueues m, or drops and counts it when the queue is full or closed.
func (b *Memory) Publish(m Message) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	size := int64(len(m.Value))
	if b.closed || (b.maxBytes > 0 && b.queued.Load()+size > b.maxBytes) {
		b.dropped.Add(1)
		return false
	}
	m.Offset = b.next
	select {
	case b.ch <- m:
		b.next++
		b.queued.Add(size)
		b.published.Add(1)
		return true
	default:
		b.dropped.Add(1)
		return false
	}
}

// Fetch blocks for the next message; after Close it drains what is queued, then returns
// ErrClosed.
func (b *Memory) Fetch(ctx context.Context) (Message, error) {
	select {
	case m, ok := <-b.ch:
		if !ok {
			return Message{}, ErrClosed
		}
		b.queued.Add(-int64(len(m.Value)))
		return m, nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

// Commit records the highest offset processed.
func (b *Memory) Commit(_ context.Context, msgs ...Message) error {
	for _, m := range msgs {
		for {
			cur := b.committed.Load()
			if m.Offset+1 <= cur || b.committed.CompareAndSwap(cur, m.Offset+1) {
				break
			}
		}
	}
	return nil
}

// Close stops accepting messages; queued ones can still be fetched.
func (b *Memory) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.ch)
	}
}

// Stats reports what went through the bus.
func (b *Memory) Stats() MemoryStats {
	return MemoryStats{Published: b.published.Load(), Dropped: b.dropped.Load(), Committed: uint64(b.committed.Load())}
}

// MemoryStats counts messages: Committed is the number of messages committed so far.
type MemoryStats struct {
	Published, Dropped, Committed uint64
}
