package correlate

import (
	"cmp"
	"slices"
	"sort"

	"github.com/kprobe/kprobe/pipeline/event"
)

// buffer holds the events waiting for the watermark, sorted by time. Kernel events come
// nearly in order (per-CPU ring buffers, a little skew between them), so a batch is
// appended and, when it overlaps the tail, merged into it: the cost is the overlap, not
// the buffer.
type buffer struct {
	evs     []event.Event // evs[head:] are waiting
	head    int
	scratch []event.Event
	order   []tsIndex
}

// tsIndex sorts a batch by time without moving events (they are large) more than once.
type tsIndex struct {
	ts int64
	i  int
}

func (b *buffer) len() int { return len(b.evs) - b.head }

func byTime(a, b event.Event) int { return cmp.Compare(a.TsNs, b.TsNs) }

// add copies batch in, keeping the order by time (stable: equal times stay in arrival
// order).
func (b *buffer) add(batch []event.Event) {
	if len(batch) == 0 {
		return
	}
	if b.head > 0 && b.head >= len(b.evs)/2 {
		n := copy(b.evs, b.evs[b.head:])
		clear(b.evs[n:]) // drop references to emitted events' strings and payloads
		b.evs = b.evs[:n]
		b.head = 0
	}
	old := len(b.evs)
	if slices.IsSortedFunc(batch, byTime) {
		b.evs = append(b.evs, batch...)
	} else {
		b.order = b.order[:0]
		for i := range batch {
			b.order = append(b.order, tsIndex{batch[i].TsNs, i})
		}
		slices.SortFunc(b.order, func(x, y tsIndex) int {
			if c := cmp.Compare(x.ts, y.ts); c != 0 {
				return c
			}
			return cmp.Compare(x.i, y.i) // stable
		})
		for _, o := range b.order {
			b.evs = append(b.evs, batch[o.i])
		}
	}
	added := b.evs[old:]
	if old == b.head || b.evs[old-1].TsNs <= added[0].TsNs {
		return
	}
	// Merge the overlapping part of the tail with the batch; the tail part is moved to
	// scratch so the merge can write in place.
	pos := b.head + sort.Search(old-b.head, func(i int) bool { return b.evs[b.head+i].TsNs > added[0].TsNs })
	left := append(b.scratch[:0], b.evs[pos:old]...)
	i, j, k := 0, old, pos
	for i < len(left) && j < len(b.evs) {
		if b.evs[j].TsNs < left[i].TsNs {
			b.evs[k] = b.evs[j]
			j++
		} else {
			b.evs[k] = left[i]
			i++
		}
		k++
	}
	copy(b.evs[k:], left[i:]) // what is left of the batch is already in place
	clear(left)
	b.scratch = left[:0]
}

// readyUntil counts the waiting events at or before t.
func (b *buffer) readyUntil(t int64) int {
	w := b.evs[b.head:]
	if len(w) == 0 || w[0].TsNs > t {
		return 0
	}
	return sort.Search(len(w), func(i int) bool { return w[i].TsNs > t })
}

// take removes the first n waiting events and returns them; the slice is valid until
// the next add.
func (b *buffer) take(n int) []event.Event {
	out := b.evs[b.head : b.head+n]
	b.head += n
	return out
}
