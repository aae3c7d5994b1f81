package bus

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestMemoryDropsWhenFullAndNeverBlocks(t *testing.T) {
	b := NewMemory(2)
	done := make(chan struct{})
	go func() {
		for i := 0; i < 5; i++ {
			b.Publish(Message{Topic: "t", Value: []byte{byte(i)}})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Publish blocked on a full bus")
	}
	if got := b.Stats(); got.Published != 2 || got.Dropped != 3 {
		t.Fatalf("stats = %+v, want 2 published, 3 dropped", got)
	}
	ctx := context.Background()
	for want := 0; want < 2; want++ {
		m, err := b.Fetch(ctx)
		if err != nil || int(m.Value[0]) != want || m.Offset != int64(want) {
			t.Fatalf("fetch %d: %+v, %v", want, m, err)
		}
		if err := b.Commit(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.Stats().Committed; got != 2 {
		t.Errorf("committed = %d, want 2", got)
	}
	b.Close()
	if _, err := b.Fetch(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("fetch after close: %v, want ErrClosed", err)
	}
	if b.Publish(Message{}) {
		t.Error("publish after close succeeded")
	}
}

func TestMemoryFetchHonoursContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := NewMemory(1).Fetch(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}
