package bpf

import (
	"testing"
	"time"
)

func TestClockWallNs(t *testing.T) {
	c := NewClock()
	for range 5 {
		mono := monoNs()
		want := time.Now().UnixNano()
		got := c.WallNs(uint64(mono))
		if d := time.Duration(got - want); d < -time.Millisecond || d > time.Millisecond {
			t.Fatalf("WallNs off by %v", d)
		}
	}
	before := c.Offset()
	c.Measure()
	if d := time.Duration(c.Offset() - before); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("re-measured offset moved by %v", d)
	}
}
