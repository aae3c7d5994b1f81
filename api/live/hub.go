package live

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// Batch is what one store write carried. Subscribers share it: treat it as read-only.
type Batch struct {
	Events []event.Event
	Spans  []span.Span
}

// Hub hands every published batch to every subscriber.
type Hub struct {
	mu   sync.Mutex
	subs map[*Sub]struct{}
	// n mirrors len(subs), so Publish skips the copy when nobody listens without a lock.
	n atomic.Int32
}

// NewHub returns an empty hub.
func NewHub() *Hub { return &Hub{subs: map[*Sub]struct{}{}} }

// Sub is one subscriber.
type Sub struct {
	h      *Hub
	c      chan Batch
	missed atomic.Uint64
	once   sync.Once
}

// Subscribe registers a subscriber that holds up to buffer batches before it misses some.
func (h *Hub) Subscribe(buffer int) *Sub {
	s := &Sub{h: h, c: make(chan Batch, max(buffer, 1))}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.n.Store(int32(len(h.subs)))
	h.mu.Unlock()
	return s
}

// C delivers batches; it is closed by Close.
func (s *Sub) C() <-chan Batch { return s.c }

// Missed is how many events and spans this subscriber missed because its buffer was full.
func (s *Sub) Missed() uint64 { return s.missed.Load() }

// Close unsubscribes; C is closed once no publish can reach it.
func (s *Sub) Close() {
	s.once.Do(func() {
		s.h.mu.Lock()
		delete(s.h.subs, s)
		s.h.n.Store(int32(len(s.h.subs)))
		s.h.mu.Unlock()
		close(s.c)
	})
}

// Subscribers is how many subscribers there are now.
func (h *Hub) Subscribers() int { return int(h.n.Load()) }

// Publish offers a copy of evs and ss to every subscriber without blocking: the caller (the
// engine's write path) reuses its slices as soon as this returns.
func (h *Hub) Publish(evs []event.Event, ss []span.Span) {
	if h.n.Load() == 0 || len(evs)+len(ss) == 0 {
		return
	}
	b := Batch{Events: append([]event.Event(nil), evs...), Spans: append([]span.Span(nil), ss...)}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.c <- b:
		default:
			s.missed.Add(uint64(len(evs) + len(ss)))
		}
	}
}

// Writer is the engine's event store.
type Writer interface {
	Insert(ctx context.Context, events []event.Event) error
}

// SpanWriter is a store that keeps spans too.
type SpanWriter interface {
	InsertSpans(ctx context.Context, spans []span.Span) error
}

// Tap is a store that publishes what it wrote, once it is written.
type Tap struct {
	W   Writer
	Hub *Hub
}

// Insert writes, then publishes.
func (t Tap) Insert(ctx context.Context, events []event.Event) error {
	if err := t.W.Insert(ctx, events); err != nil {
		return err
	}
	t.Hub.Publish(events, nil)
	return nil
}

// InsertSpans writes (when the store keeps spans), then publishes.
func (t Tap) InsertSpans(ctx context.Context, spans []span.Span) error {
	if sw, ok := t.W.(SpanWriter); ok {
		if err := sw.InsertSpans(ctx, spans); err != nil {
			return err
		}
	}
	t.Hub.Publish(nil, spans)
	return nil
}
