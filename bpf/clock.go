package bpf

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Clock converts bpf_ktime_get_ns (CLOCK_MONOTONIC) to wall-clock ns.
// The offset is re-measured periodically: NTP slews REALTIME, MONOTONIC
// does not, so a one-off offset drifts.
type Clock struct {
	offset atomic.Int64 // realtime - monotonic, ns
}

// NewClock measures the offset once.
func NewClock() *Clock {
	c := &Clock{}
	c.Measure()
	return c
}

// WallNs converts a BPF ktime to Unix ns.
func (c *Clock) WallNs(ktime uint64) int64 {
	return int64(ktime) + c.offset.Load()
}

// Offset is the current realtime-monotonic offset in ns.
func (c *Clock) Offset() int64 { return c.offset.Load() }

// Measure re-measures the offset: REALTIME read between two MONOTONIC reads,
// keeping the sample with the tightest bracket.
func (c *Clock) Measure() {
	var best int64
	bestWidth := int64(-1)
	for range 16 {
		m1 := monoNs()
		r := realNs()
		m2 := monoNs()
		if w := m2 - m1; bestWidth < 0 || w < bestWidth {
			bestWidth = w
			best = r - (m1 + w/2)
		}
	}
	c.offset.Store(best)
}

// run re-measures every interval until ctx is done.
func (c *Clock) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Measure()
		}
	}
}

func monoNs() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func realNs() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_REALTIME, &ts)
	return ts.Nano()
}
