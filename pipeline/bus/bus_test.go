package bus

import (
	"context"
	"errors"
	"slices"
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

// TestMemoryLimitBytes: a bus with a byte budget drops what would exceed it, whatever
// room its count leaves, and takes messages again once the consumer has fetched.
func TestMemoryLimitBytes(t *testing.T) {
	b := NewMemory(100).LimitBytes(10)
	var got []bool
	for _, n := range []int{4, 4, 4, 2} {
		got = append(got, b.Publish(Message{Value: make([]byte, n)}))
	}
	if want := []bool{true, true, false, true}; !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	if _, err := b.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !b.Publish(Message{Value: make([]byte, 4)}) {
		t.Error("a message that fits after a fetch was dropped")
	}
	if s := b.Stats(); s.Dropped != 1 || s.Published != 4 {
		t.Errorf("stats %+v, want 4 published and 1 dropped", s)
	}
}
