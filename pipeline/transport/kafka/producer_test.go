package kafka

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newIdleProducer builds a producer whose Run is never started, pointed at a port nothing
// listens on (it is never dialed unless a test closes with a live context).
func newIdleProducer(t testing.TB, buffer int) *Producer {
	t.Helper()
	p, err := NewProducer(ProducerOptions{Brokers: []string{"127.0.0.1:1"}, BufferMessages: buffer})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPublishDropsAndCountsWhenFull(t *testing.T) {
	const buffer, extra = 100, 37
	p := newIdleProducer(t, buffer)
	accepted := 0
	for i := range buffer + extra {
		if p.Publish(Message{Topic: "events", Key: []byte{byte(i)}, Value: []byte("v")}) {
			accepted++
		}
	}
	if accepted != buffer {
		t.Errorf("accepted %d, want %d", accepted, buffer)
	}
	want := ProducerStats{Enqueued: buffer, Dropped: extra, Buffered: buffer}
	if diff := cmp.Diff(want, p.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestPublishRejectsInvalidTopic(t *testing.T) {
	p := newIdleProducer(t, 10)
	for _, topic := range []string{"", "a b", "..", strings.Repeat("x", 250), "ok/no"} {
		if p.Publish(Message{Topic: topic}) {
			t.Errorf("Publish accepted topic %q", topic)
		}
	}
	if !p.Publish(Message{Topic: "kprobe.events_v1-a"}) {
		t.Error("Publish refused a valid topic")
	}
	want := ProducerStats{Enqueued: 1, Dropped: 5, Buffered: 1}
	if diff := cmp.Diff(want, p.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestCloseCountsUnflushedAndRefusesPublish(t *testing.T) {
	p := newIdleProducer(t, 10)
	for range 4 {
		p.Publish(Message{Topic: "events", Value: []byte("v")})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // nothing can be flushed
	err := p.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "4 messages not written") {
		t.Fatalf("Close error = %v, want one reporting 4 unwritten messages", err)
	}
	if p.Publish(Message{Topic: "events"}) {
		t.Fatal("Publish accepted after Close")
	}
	want := ProducerStats{Enqueued: 4, Dropped: 1, Discarded: 4}
	if diff := cmp.Diff(want, p.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestRunTwice(t *testing.T) {
	p := newIdleProducer(t, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	time.Sleep(10 * time.Millisecond)
	if err := p.Run(ctx); err == nil {
		t.Error("second Run returned nil, want an error")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
}

func TestBackoffBounds(t *testing.T) {
	for attempt := 1; attempt < 40; attempt++ {
		d := backoff(attempt)
		if d < backoffMin*3/4 || d > backoffMax*5/4 {
			t.Fatalf("backoff(%d) = %v, outside [%v, %v]", attempt, d, backoffMin*3/4, backoffMax*5/4)
		}
	}
}

func TestConnErrorNamesTheFix(t *testing.T) {
	tests := []struct {
		name string
		err  error
		hint bool
	}{
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"wrapped refused", errors.Join(errors.New("x"), syscall.ECONNREFUSED), true},
		{"other", errors.New("leader not available"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := connError([]string{"127.0.0.1:19092"}, tt.err).Error()
			if has := strings.Contains(got, "scripts/kafka/kafka.sh start"); has != tt.hint {
				t.Errorf("connError = %q; hint present %v, want %v", got, has, tt.hint)
			}
		})
	}
}
