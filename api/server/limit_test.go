package server

import (
	"testing"
	"time"
)

func TestLimiterRefillsAtRate(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(2, 3)
	l.now = func() time.Time { return now }
	allowed := func(n int) int {
		ok := 0
		for range n {
			if l.allow("a") {
				ok++
			}
		}
		return ok
	}
	if got := allowed(5); got != 3 {
		t.Fatalf("burst: %d of 5 allowed, want 3", got)
	}
	if !l.allow("b") {
		t.Fatal("another caller has its own bucket")
	}
	now = now.Add(time.Second)
	if got := allowed(5); got != 2 {
		t.Fatalf("after 1s at 2/s: %d allowed, want 2", got)
	}
	now = now.Add(time.Hour)
	if got := allowed(5); got != 3 {
		t.Fatalf("after an hour: %d allowed, want the burst of 3", got)
	}
}

func TestLimiterForgetsFullBuckets(t *testing.T) {
	now := time.Unix(0, 0)
	l := newLimiter(1, 1)
	l.now = func() time.Time { return now }
	for i := range maxBuckets {
		l.allow(string(rune(i)))
	}
	now = now.Add(time.Minute)
	l.allow("new")
	if n := len(l.buckets); n != 1 {
		t.Errorf("%d buckets after the sweep, want 1", n)
	}
}
