package datadir

import (
	"context"
	"sync"
	"time"

	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// held is the stores this process opened itself: shared by the calls that overlap, and
// kept for Options.Linger after the last one ends. Opening the embedded engine on a large
// log and closing it again costs 0.3-0.6 s; a screen asks several questions in a row (the
// start screen's lists, a chain then its events), which would pay that each time.
type held struct {
	mu    sync.Mutex
	svc   investigate.Service
	users int
	gen   uint64 // bumped whenever the stores are taken, so a stale linger closes nothing
	timer *time.Timer
	// closed: the Reader is closed; stores a late call opens are closed when it ends.
	closed bool
}

// stores returns the held stores, opening them when none are held and no other process
// holds the directory; ok is false (with no error) when another process holds it. The
// caller is a user until it calls release.
func (r *Reader) stores(ctx context.Context, dir string) (svc investigate.Service, ok bool, err error) {
	h := &r.held
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.svc != nil {
		h.users++
		h.gen++
		return h.svc, true, nil
	}
	// Opening under the lock makes overlapping first calls share one open.
	inUse, err := eventlog.EmbeddedInUse(dir)
	if err != nil || inUse {
		return nil, false, err
	}
	svc, err = r.opts.Open(ctx)
	if err != nil {
		if taken, _ := eventlog.EmbeddedInUse(dir); taken {
			return nil, false, nil // someone took the directory between the look and the open
		}
		return nil, false, err
	}
	h.svc, h.users = svc, 1
	h.gen++
	return svc, true, nil
}

// Adopt makes svc, the stores of Dir its caller opened, the held stores, as if a call had
// just used them: the first call reuses them instead of opening the stores again.
func (r *Reader) Adopt(svc investigate.Service) {
	h := &r.held
	h.mu.Lock()
	if h.svc != nil {
		h.mu.Unlock()
		svc.Close()
		return
	}
	h.svc, h.users = svc, 1
	h.mu.Unlock()
	r.release()
}

// release ends one call's use of the held stores; the last one leaves them open for
// Linger, then closes them unless a call took them meanwhile.
func (r *Reader) release() {
	h := &r.held
	h.mu.Lock()
	defer h.mu.Unlock()
	h.users--
	if h.users > 0 {
		return
	}
	if h.closed || r.opts.Linger < 0 {
		h.closeLocked()
		return
	}
	h.gen++
	gen := h.gen
	h.timer = time.AfterFunc(r.opts.Linger, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.gen == gen && h.users == 0 {
			h.closeLocked()
		}
	})
}

// closeLocked closes the held stores (under the lock: a call opening them again waits,
// rather than racing the close for the engine).
func (h *held) closeLocked() {
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	if h.svc != nil {
		h.svc.Close()
		h.svc = nil
	}
}

// closeHeld closes the held stores once no call uses them.
func (r *Reader) closeHeld() {
	h := &r.held
	h.mu.Lock()
	defer h.mu.Unlock()
	// A call that still runs closes them when it ends.
	h.closed = true
	if h.users == 0 {
		h.closeLocked()
	}
}
