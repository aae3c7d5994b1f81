package bpf

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/kprobe/kprobe/bpf/bpftest"
)

// TestKernelLost fills a one-page ring buffer while nobody reads it: the
// kernel must count every reserve failure, and received + lost must add up
// to exactly what the workload did.
func TestKernelLost(t *testing.T) {
	needKernel(t)
	const k = 5000
	w := bpftest.Start(t, "writes", "5000")
	r := openProbes(t, Options{PIDs: []uint32{w.Info.PID}, RingBytes: os.Getpagesize()})
	w.Run(t) // Run not started: the ring fills up
	s := startSession(r)
	evs := s.stop(t)

	st := r.Stats()
	if st.KernelLost == 0 {
		t.Fatalf("no kernel loss with a one-page ring: %+v", st)
	}
	got := 0
	for _, e := range evs {
		if e.Type == EventWrite {
			got++
		}
	}
	lostWrites := st.KernelLostByType[EventWrite]
	// The single-threaded C workload makes exactly k write(2) calls after "go".
	if uint64(got)+lostWrites != k {
		t.Errorf("received %d + lost %d writes = %d, want %d", got, lostWrites, uint64(got)+lostWrites, k)
	}
	if st.Received[EventWrite] != uint64(got) {
		t.Errorf("stats received %d writes, collected %d", st.Received[EventWrite], got)
	}
	var sum uint64
	for _, n := range st.KernelLostByType {
		sum += n
	}
	if sum != st.KernelLost {
		t.Errorf("lost by type sums to %d, total %d", sum, st.KernelLost)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if after := r.Stats(); after.KernelLost != st.KernelLost {
		t.Errorf("kernel lost after Close: %d, before %d", after.KernelLost, st.KernelLost)
	}
	t.Logf("received %d writes, kernel lost %d (all types %d)", got, lostWrites, st.KernelLost)
}

// TestQueueDropped consumes Batches only after Run returns, with a
// one-chunk queue behind the reader: Run must keep draining the ring (the
// kernel loses nothing) and count what the queue could not take, and every
// event read is either delivered or counted.
func TestQueueDropped(t *testing.T) {
	needKernel(t)
	const k = 50000 // ~10 chunks
	w := bpftest.Start(t, "writes", strconv.Itoa(k))
	r := openProbes(t, Options{PIDs: []uint32{w.Info.PID}, BufferBytes: chunkBytes, QueueLen: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	w.Run(t)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var delivered uint64
	for b := range r.Batches() {
		delivered += uint64(len(b))
	}
	st := r.Stats()
	if st.QueueDropped == 0 || st.QueueDroppedBatches == 0 {
		t.Fatalf("nothing dropped with a one-chunk queue: %+v", st)
	}
	if st.KernelLost != 0 {
		t.Errorf("kernel lost %d: the reader must keep draining", st.KernelLost)
	}
	if delivered+st.QueueDropped != st.ReceivedTotal {
		t.Errorf("delivered %d + dropped %d != received %d", delivered, st.QueueDropped, st.ReceivedTotal)
	}
	if st.Received[EventWrite] < k {
		t.Errorf("received %d writes, want >= %d", st.Received[EventWrite], k)
	}
}
