package kafka

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestQueueBound(t *testing.T) {
	q := newQueue(3)
	for i := range 3 {
		if !q.offer(Message{Topic: "t"}) {
			t.Fatalf("offer %d refused below capacity", i)
		}
	}
	if q.offer(Message{Topic: "t"}) {
		t.Fatal("offer accepted beyond capacity")
	}
	// Taking a message out of the channel does not free its slot: it is still in flight.
	<-q.ch
	if q.offer(Message{Topic: "t"}) {
		t.Fatal("offer accepted while the taken message was not released")
	}
	q.release(1)
	if !q.offer(Message{Topic: "t"}) {
		t.Fatal("offer refused after release")
	}
	if got := q.len(); got != 3 {
		t.Fatalf("len = %d, want 3", got)
	}
}

func TestQueueConcurrentOffersAcceptExactlyCapacity(t *testing.T) {
	const capacity, writers, each = 1000, 8, 500
	q := newQueue(capacity)
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				if q.offer(Message{Topic: "t"}) {
					accepted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := accepted.Load(); got != capacity {
		t.Fatalf("accepted %d, want %d", got, capacity)
	}
	if got := len(q.ch); got != capacity {
		t.Fatalf("channel holds %d, want %d", got, capacity)
	}
}

// BenchmarkPublish measures the caller's side alone: Publish into a buffer drained by a
// goroutine standing in for Run.
func BenchmarkPublish(b *testing.B) {
	p := newIdleProducer(b, 100_000)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-p.q.ch:
				p.q.release(1)
			case <-done:
				return
			}
		}
	}()
	defer close(done)
	m := Message{Topic: "events", Key: []byte("k"), Value: make([]byte, 1024)}
	b.ReportAllocs()
	for b.Loop() {
		p.Publish(m)
	}
}
