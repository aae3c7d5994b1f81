package correlate

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kprobe/kprobe/pipeline/event"
)

// TestBufferBlocks checks the block queue against a plain stable sort across many
// blocks: overlapping batches, late filtering, partial drains and emptying.
func TestBufferBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var b buffer
	var ref []event.Event // what should be waiting, in order
	id := uint64(0)
	now := int64(1_000_000)
	after := int64(math.MinInt64)
	for round := range 200 {
		batch := make([]event.Event, rng.IntN(3*chunkLen))
		for i := range batch {
			id++
			// Mostly in order, with skew reaching back into what is buffered.
			batch[i] = event.Event{ID: id, TsNs: now - rng.Int64N(5000) + int64(i), Node: "n"}
		}
		now += int64(len(batch)) + rng.Int64N(3000)
		b.add(batch, after)
		for _, e := range batch {
			if after == math.MinInt64 || e.TsNs > after {
				ref = append(ref, e)
			}
		}
		slices.SortStableFunc(ref, byTime)
		if b.len() != len(ref) {
			t.Fatalf("round %d: %d buffered, want %d", round, b.len(), len(ref))
		}
		n := rng.IntN(len(ref) + 1)
		if round%50 == 49 {
			n = len(ref)
		}
		var got []event.Event
		b.drain(n, func(evs []event.Event) { got = append(got, evs...) })
		for i := range got {
			if got[i].ID != ref[i].ID {
				t.Fatalf("round %d: drained #%d is event %d, want %d", round, i, got[i].ID, ref[i].ID)
			}
		}
		if len(got) != n {
			t.Fatalf("round %d: drained %d, want %d", round, len(got), n)
		}
		if n > 0 {
			after = max(after, ref[n-1].TsNs)
		}
		ref = slices.Delete(ref, 0, n)
		if want := len(ref) - len(slices.DeleteFunc(slices.Clone(ref), func(e event.Event) bool { return e.TsNs <= after })); b.readyUntil(after) != want {
			t.Fatalf("round %d: readyUntil %d, want %d", round, b.readyUntil(after), want)
		}
	}
	for _, c := range b.free {
		for i := range c {
			if c[i].ID != 0 || c[i].Node != "" || c[i].TsNs != 0 {
				t.Fatal("a free block holds stale events")
			}
		}
	}
}
