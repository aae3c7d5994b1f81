package otlp

import (
	"context"
	"sync"
	"time"
)

// admission bounds the request bytes held in memory at once across every connection
// and protocol: a request waits (up to wait) for room, then is refused as busy, so a
// burst of large exports is throttled instead of taking the node's memory.
type admission struct {
	mu     sync.Mutex
	limit  int64
	inUse  int64
	peak   int64
	wait   time.Duration
	notify chan struct{} // closed and replaced whenever bytes are released
}

func newAdmission(limit int64, wait time.Duration) *admission {
	return &admission{limit: limit, wait: wait, notify: make(chan struct{})}
}

// acquire reserves n bytes; it reports false when they could not be had within the
// wait or before ctx ended. A request larger than the whole budget is given the whole
// budget (callers cap requests below it anyway).
func (a *admission) acquire(ctx context.Context, n int64) bool {
	n = min(n, a.limit)
	var timer <-chan time.Time
	for {
		a.mu.Lock()
		if a.inUse+n <= a.limit {
			a.inUse += n
			a.peak = max(a.peak, a.inUse)
			a.mu.Unlock()
			return true
		}
		ch := a.notify
		a.mu.Unlock()
		if timer == nil {
			t := time.NewTimer(a.wait)
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-ch:
		case <-timer:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// release returns n bytes reserved by acquire.
func (a *admission) release(n int64) {
	n = min(n, a.limit)
	if n <= 0 {
		return
	}
	a.mu.Lock()
	a.inUse -= n
	close(a.notify)
	a.notify = make(chan struct{})
	a.mu.Unlock()
}

// shrink keeps only n of the had bytes reserved (once a request's real size is known).
func (a *admission) shrink(had, n int64) int64 {
	if n < had {
		a.release(had - n)
		return n
	}
	return had
}

func (a *admission) stats() (inUse, peak int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inUse, a.peak
}
