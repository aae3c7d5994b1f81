package bpf

import "testing"

func TestReleaseRecyclesFullBatches(t *testing.T) {
	r := &Probes{free: make(chan []Event, 1)}

	r.Release(make([]Event, 3)) // exact-size copy: not kept
	if len(r.free) != 0 {
		t.Fatal("small batch kept in the free list")
	}

	p := []byte("payload")
	b := make([]Event, 2, maxBatch)
	b[1].Payload = p
	r.Release(b)
	r.Release(make([]Event, 0, maxBatch)) // free list full: dropped, no block
	got := r.getBatch()
	if cap(got) != maxBatch || len(got) != 0 || &got[:1][0] != &b[0] {
		t.Fatalf("getBatch: len %d cap %d, want the released batch", len(got), cap(got))
	}
	if got[:2][1].Payload != nil {
		t.Error("released batch still references a payload")
	}
	if string(p) != "payload" {
		t.Error("payload changed by Release")
	}
	if fresh := r.getBatch(); cap(fresh) != maxBatch || len(fresh) != 0 {
		t.Fatalf("fresh batch: len %d cap %d", len(fresh), cap(fresh))
	}
}
