package replay

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/replay/recording"
)

// cursors is how far the program has consumed the recording. Every step returns its own
// undo, so that a call withdrawn by a signal (and restarted by the kernel) is served the
// same record again: a record is never consumed twice.
type cursors struct {
	in    map[*recording.Resource]*streamPos
	out   map[*recording.Resource]*streamPos
	opens map[string]int
	used  map[*recording.Call]bool // connects, accepts, polls, randoms
	// held is when the program first waited for a recorded readiness that a shorter
	// timeout made it miss: the next wait gets what is left.
	held map[*recording.Call]time.Time
}

// streamPos is a position in a resource's input or output: a call, and how many of its
// bytes the program has already been given (reads smaller than production's take a
// recorded read in pieces; writes are compared as a byte stream).
type streamPos struct {
	i, off int
	// heldSince is when the program first asked for the current record, so that a
	// restarted call waits only what is left of the recorded duration.
	heldSince time.Time
}

func (c *cursors) init(rec *recording.Recording) {
	c.in = map[*recording.Resource]*streamPos{}
	c.out = map[*recording.Resource]*streamPos{}
	c.opens = map[string]int{}
	c.used = map[*recording.Call]bool{}
	c.held = map[*recording.Call]time.Time{}
	for _, r := range rec.Resources {
		c.in[r] = &streamPos{}
		c.out[r] = &streamPos{}
	}
}

// restore puts the position back; heldSince survives it, so that a call restarted after
// a signal waits only what is left.
func (p *streamPos) restore(i, off int) { p.i, p.off = i, off }

// nextInput returns the record the program's next read of res gets and the recorded
// wait before it: EAGAIN records (a non-blocking read that found nothing, then waited
// in poll or epoll) are skipped when data follows, and their wait is added, because the
// replay answers the read the moment the data is there. It returns nil at the end of
// the stream, or when all that is left is EAGAIN (production was still waiting when
// the recording ended).
func nextInput(res *recording.Resource, p *streamPos) (*recording.Call, time.Duration) {
	if p.i >= len(res.Input) {
		return nil, 0
	}
	if p.off > 0 {
		return res.Input[p.i], 0
	}
	first := res.Input[p.i]
	for j := p.i; j < len(res.Input); j++ {
		c := res.Input[j]
		if c.Ev.Errno == int32(unix.EAGAIN) {
			continue
		}
		wait := time.Duration(c.Ev.DurNs)
		if j > p.i {
			// From the start of the first EAGAIN (the program began waiting there) to the
			// end of this read.
			gap := int64(c.Ev.KtimeNs+c.Ev.DurNs) - int64(first.Ev.KtimeNs)
			wait = time.Duration(max(gap, 0))
		}
		p.i = j
		return c, wait
	}
	return nil, 0
}

// unconsumed counts recorded inputs the program never asked for, on the files and
// sockets the replay served (the shared objects the loader read natively are not
// missing).
func (c *cursors) unconsumed(rec *recording.Recording, served map[*recording.Resource]bool) int {
	n := 0
	for _, r := range rec.Resources {
		if !served[r] {
			continue
		}
		p := c.in[r]
		for j := p.i; j < len(r.Input); j++ {
			if r.Input[j].Ev.Errno != int32(unix.EAGAIN) && !(j == p.i && p.off > 0) {
				n++
			}
		}
	}
	for _, calls := range [][]*recording.Call{rec.Connects, rec.Accepts} {
		for _, k := range calls {
			if !c.used[k] && k.Ev.Errno != int32(unix.EAGAIN) {
				n++
			}
		}
	}
	return n
}
