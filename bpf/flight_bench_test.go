package bpf

import (
	"context"
	"os"
	"testing"

	"github.com/cilium/ebpf"

	"golang.org/x/sys/unix"
)

// BenchmarkFlightRecorder is what the flight recorder adds to a syscall, next to the
// plain recorder, in one run:
//
//	baseline        nothing attached
//	plain           the plain recorder recording this process
//	plain+flight    both recording it (what --flight-recorder costs a selected process)
//	flight-filtered the flight recorder attached for another process (what it costs every
//	                process it does not select)
//
// on a 1-byte write and on a 64 KiB read (the flight recorder keeps all 64 KiB: the
// difference per KiB is the cost of a captured KiB).
func BenchmarkFlightRecorder(b *testing.B) {
	null, err := unix.Open("/dev/null", unix.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(null)
	zero, err := unix.Open("/dev/zero", unix.O_RDONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(zero)
	one := []byte{'x'}
	buf := make([]byte, 64<<10)
	calls := []struct {
		name string
		call func()
	}{
		{"write-1B", func() { unix.Write(null, one) }},
		{"read-64KiB", func() { unix.Read(zero, buf) }},
	}
	self := uint32(os.Getpid())
	for _, c := range calls {
		b.Run(c.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.call()
			}
		})
		b.Run(c.name+"/plain", func(b *testing.B) {
			needKernel(b)
			r := openProbes(b, Options{PIDs: []uint32{self}, RingBytes: 64 << 20, QueueLen: 8192})
			d := startDrainer(r)
			b.ReportAllocs()
			for b.Loop() {
				c.call()
			}
			b.StopTimer()
			d.stop()
		})
		b.Run(c.name+"/plain+flight", func(b *testing.B) {
			needKernel(b)
			r := openProbes(b, Options{PIDs: []uint32{self}, RingBytes: 64 << 20, QueueLen: 8192})
			d := startDrainer(r)
			f, fd := openFlightDrained(b, FlightOptions{PIDs: []uint32{self}, RingBytes: 512 << 20, QueueLen: 8192})
			b.ReportAllocs()
			for b.Loop() {
				c.call()
			}
			b.StopTimer()
			fd()
			d.stop()
			st := f.Stats()
			b.ReportMetric(float64(st.Calls)/float64(b.N), "calls/op")
			b.ReportMetric(float64(st.LostCalls+st.LostChunks), "lost")
			// The flight programs' own run time per call (kernel.bpf_stats_enabled): CPU
			// time, which holds on a busy machine where the wall time above does not (an
			// upper bound: the programs run for the other processes' syscalls meanwhile).
			flightProgTime(b, f, c.call)
		})
		b.Run(c.name+"/flight-filtered", func(b *testing.B) {
			needKernel(b)
			f, _ := openFlightDrained(b, FlightOptions{PIDs: []uint32{1 << 30}})
			b.ReportAllocs()
			for b.Loop() {
				c.call()
			}
			b.StopTimer()
			flightProgTime(b, f, c.call)
		})
	}
}

// openFlightDrained opens the flight recorder and consumes its batches until the
// returned stop is called (or the benchmark ends).
func openFlightDrained(tb testing.TB, opts FlightOptions) (*Flight, func()) {
	tb.Helper()
	f, err := OpenFlight(context.Background(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go f.Run(ctx)
	go func() {
		for range f.Batches() {
		}
		close(done)
	}()
	stop := func() { cancel(); <-done }
	tb.Cleanup(func() { stop(); f.Close() })
	return f, func() { cancel(); <-done }
}

// flightProgTime reports the flight programs' run time per call over 2,000 calls (few
// enough that 64 KiB reads fit the ring buffer undrained).
func flightProgTime(b *testing.B, f *Flight, call func()) {
	b.Helper()
	const n = 2000
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Logf("bpf stats unavailable: %v", err)
		return
	}
	defer stats.Close()
	progs := []*ebpf.Program{f.objs.FlightEnter, f.objs.FlightExit}
	before := progRuntime(b, progs)
	for range n {
		call()
	}
	b.ReportMetric(float64(progRuntime(b, progs)-before)/n, "bpf-ns/op")
}
