package correlate

import (
	"cmp"
	"math"
	"slices"

	"github.com/kprobe/kprobe/pipeline/event"
)

// chunkLen is the number of events in one buffer block (about 400 KiB of events).
const (
	chunkShift = 10
	chunkLen   = 1 << chunkShift
	// maxFreeChunks bounds the emptied blocks kept for reuse: enough to absorb the
	// churn of a steady stream, not so many that a drained buffer keeps its peak size.
	maxFreeChunks = 16
)

type chunk [chunkLen]event.Event

// buffer holds the events waiting for the watermark, sorted by time, in a queue of
// fixed-size blocks: events are copied in once, joined and emitted from the block they
// sit in, and blocks are recycled once emptied, so the buffer never grows by copying
// and, at steady state, allocates nothing (a single growing slice moved every buffered
// event on each regrowth and compaction, and churned hundreds of MB through the GC).
//
// Kernel events come nearly in order (per-CPU ring buffers, a little skew between
// them), so a batch is appended and, when it overlaps the tail, merged into it: the cost
// is the overlap, not the buffer.
type buffer struct {
	chunks  []*chunk // the waiting events are the n from chunks[0][off]
	off     int
	n       int
	free    []*chunk // emptied blocks, cleared, for reuse
	scratch []event.Event
	order   []tsIndex
}

// tsIndex sorts a batch by time without moving events (they are large) more than once.
type tsIndex struct {
	ts int64
	i  int
}

func (b *buffer) len() int { return b.n }

// at returns the i-th waiting event.
func (b *buffer) at(i int) *event.Event {
	p := b.off + i
	return &b.chunks[p>>chunkShift][p&(chunkLen-1)]
}

// slot extends the buffer by one event and returns where to write it.
func (b *buffer) slot() *event.Event {
	p := b.off + b.n
	ci := p >> chunkShift
	if ci == len(b.chunks) {
		var c *chunk
		if k := len(b.free); k > 0 {
			c = b.free[k-1]
			b.free[k-1] = nil
			b.free = b.free[:k-1]
		} else {
			c = new(chunk)
		}
		b.chunks = append(b.chunks, c)
	}
	b.n++
	return &b.chunks[ci][p&(chunkLen-1)]
}

func byTime(a, b event.Event) int { return cmp.Compare(a.TsNs, b.TsNs) }

// add copies in the events of batch later than after (all of them if after is
// math.MinInt64: nothing is late before the first watermark), keeping the order by time
// (stable: equal times stay in arrival order).
func (b *buffer) add(batch []event.Event, after int64) {
	b.order = b.order[:0]
	sorted := true
	last := int64(0)
	for i := range batch {
		ts := batch[i].TsNs
		if ts <= after && after != math.MinInt64 {
			continue
		}
		if len(b.order) > 0 && ts < last {
			sorted = false
		}
		last = ts
		b.order = append(b.order, tsIndex{ts, i})
	}
	if len(b.order) == 0 {
		return
	}
	if !sorted {
		slices.SortFunc(b.order, func(x, y tsIndex) int {
			if c := cmp.Compare(x.ts, y.ts); c != 0 {
				return c
			}
			return cmp.Compare(x.i, y.i) // stable
		})
	}
	first := b.order[0].ts
	if b.n == 0 || b.at(b.n-1).TsNs <= first {
		for _, o := range b.order {
			*b.slot() = batch[o.i]
		}
		return
	}
	// Merge the overlapping part of the tail with the batch: the tail part is moved to
	// scratch and the buffer cut back to where it started, then both are appended in
	// order. The cut-off blocks stay in place: the merge refills at least as much.
	pos := b.search(func(e *event.Event) bool { return e.TsNs > first })
	left := b.scratch[:0]
	for i := pos; i < b.n; i++ {
		left = append(left, *b.at(i))
	}
	b.n = pos
	i, j := 0, 0
	for i < len(left) && j < len(b.order) {
		if o := b.order[j]; o.ts < left[i].TsNs {
			*b.slot() = batch[o.i]
			j++
		} else {
			*b.slot() = left[i]
			i++
		}
	}
	for ; i < len(left); i++ {
		*b.slot() = left[i]
	}
	for ; j < len(b.order); j++ {
		*b.slot() = batch[b.order[j].i]
	}
	clear(left)
	b.scratch = left[:0]
}

// search returns the first waiting index for which f holds (f false then true).
func (b *buffer) search(f func(*event.Event) bool) int {
	lo, hi := 0, b.n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if !f(b.at(m)) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// readyUntil counts the waiting events at or before t.
func (b *buffer) readyUntil(t int64) int {
	if b.n == 0 || b.at(0).TsNs > t {
		return 0
	}
	if b.at(b.n-1).TsNs <= t {
		return b.n
	}
	return b.search(func(e *event.Event) bool { return e.TsNs > t })
}

// drain removes the first n waiting events, handing them to f in order as slices of the
// buffer's own storage (one per block they span), valid only until f returns.
func (b *buffer) drain(n int, f func([]event.Event)) {
	for n > 0 {
		end := min(b.off+n, chunkLen)
		seg := b.chunks[0][b.off:end]
		f(seg)
		clear(seg) // drop references to emitted events' strings, payloads and attributes
		k := end - b.off
		n -= k
		b.n -= k
		b.off = end
		if b.off == chunkLen {
			c := b.chunks[0]
			copy(b.chunks, b.chunks[1:])
			b.chunks[len(b.chunks)-1] = nil
			b.chunks = b.chunks[:len(b.chunks)-1]
			b.off = 0
			if len(b.free) < maxFreeChunks {
				b.free = append(b.free, c)
			}
		}
	}
	if b.n == 0 {
		// Empty: restart at the first block rather than keep a half-used one.
		b.off = 0
		for i, c := range b.chunks {
			if len(b.free) < maxFreeChunks {
				b.free = append(b.free, c)
			}
			b.chunks[i] = nil
		}
		b.chunks = b.chunks[:0]
	}
}
