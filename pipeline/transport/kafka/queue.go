package kafka

import "sync/atomic"

// queue is the producer's bounded buffer. Its bound covers every message the producer holds:
// those waiting in the channel and those taken out for a write that has not yet succeeded. So
// "full" means exactly BufferMessages undelivered messages, whatever the writer is doing.
type queue struct {
	ch   chan Message
	held atomic.Int64 // messages accepted and not yet released
	cap  int64
}

func newQueue(capacity int) *queue {
	return &queue{ch: make(chan Message, capacity), cap: int64(capacity)}
}

// offer adds m unless the buffer is full. It never blocks.
func (q *queue) offer(m Message) bool {
	for {
		n := q.held.Load()
		if n >= q.cap {
			return false
		}
		if q.held.CompareAndSwap(n, n+1) {
			break
		}
	}
	// held <= cap bounds the channel length, so this send cannot block; the default case
	// guards the invariant rather than being expected to run.
	select {
	case q.ch <- m:
		return true
	default:
		q.held.Add(-1)
		return false
	}
}

// release frees n slots once their messages are delivered or given up.
func (q *queue) release(n int) { q.held.Add(-int64(n)) }

// len reports how many messages are held, waiting or in flight.
func (q *queue) len() int { return int(q.held.Load()) }
