package bpf

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/bpf/bpftest"
)

// drainer runs the Probes and counts delivered events without keeping them.
type drainer struct {
	cancel context.CancelFunc
	done   chan struct{}
	events atomic.Uint64
	writes atomic.Uint64
}

func startDrainer(r *Probes) *drainer {
	ctx, cancel := context.WithCancel(context.Background())
	d := &drainer{cancel: cancel, done: make(chan struct{})}
	go r.Run(ctx)
	go func() {
		defer close(d.done)
		for b := range r.Batches() {
			var w uint64
			for i := range b {
				if b[i].Type == EventWrite {
					w++
				}
			}
			d.events.Add(uint64(len(b)))
			d.writes.Add(w)
			r.Release(b) // as pipeline/recorder does
		}
	}()
	return d
}

func (d *drainer) stop() {
	d.cancel()
	<-d.done
}

// BenchmarkSyscallWrite: the added cost of a traced write(2) is
// recorded - baseline ns/op; recorded-filtered-out - baseline is what the
// hooks cost a process the filters reject (every other process on the host).
func BenchmarkSyscallWrite(b *testing.B) {
	fd, err := unix.Open("/dev/null", unix.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	one := []byte{'x'}
	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			unix.Write(fd, one)
		}
	})
	b.Run("recorded", func(b *testing.B) {
		needKernel(b)
		r := openProbes(b, Options{PIDs: []uint32{uint32(os.Getpid())}}) // the shipped sizes
		d := startDrainer(r)
		b.ReportAllocs()
		for b.Loop() {
			unix.Write(fd, one)
		}
		b.StopTimer()
		d.stop()
		st := r.Stats()
		b.ReportMetric(float64(st.KernelLost), "lost")
		b.ReportMetric(float64(st.QueueDropped), "dropped")
		b.ReportMetric(float64(st.Received[EventWrite])/float64(b.N), "events/op")
	})
	b.Run("recorded-filtered-out", func(b *testing.B) {
		needKernel(b)
		r := openFilteredOut(b)
		d := startDrainer(r)
		b.ReportAllocs()
		for b.Loop() {
			unix.Write(fd, one)
		}
		b.StopTimer()
		d.stop()
		b.ReportMetric(float64(r.Stats().Received[EventWrite])/float64(b.N), "events/op")
	})
}

func BenchmarkDecode(b *testing.B) {
	raw := sample(b, bpfEvent{
		TsNs: 1, DurNs: 2, Pid: 3, Tid: 4, Type: uint8(EventTCPSend), Comm: comm16("postgres"),
		Ret: 100, Fd: -1, Family: afInet, Saddr: [16]byte{127, 0, 0, 1}, Daddr: [16]byte{127, 0, 0, 1},
	}, nil)
	var e Event
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := Decode(raw, &e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDrain measures ring buffer → decoded batches: a workload fills
// the ring while Run is stopped, then Run and the decoder drain it into a
// consumer that only counts. "shipped" is the default ring (16 MiB, filled
// with 80k writes); "ring-64MiB" holds 200k.
func BenchmarkDrain(b *testing.B) {
	for _, c := range []struct {
		name      string
		ringBytes int
		perOp     int
	}{{"shipped", 0, 80000}, {"ring-64MiB", 64 << 20, 200000}} {
		b.Run(c.name, func(b *testing.B) {
			needKernel(b)
			var total time.Duration
			var events, lost, dropped uint64
			for b.Loop() {
				b.StopTimer()
				w := bpftest.Start(b, "writes", strconv.Itoa(c.perOp))
				r := openProbes(b, Options{PIDs: []uint32{w.Info.PID}, RingBytes: c.ringBytes})
				w.Run(b)
				b.StartTimer()
				start := time.Now()
				d := startDrainer(r)
				// Hand the last partial chunk over once the ring is read,
				// not at the next flush deadline.
				if err := r.Flush(); err != nil {
					b.Fatal(err)
				}
				// Drained: every write read, decoded and delivered (the
				// workload's other events are few and come first).
				for d.writes.Load() < uint64(c.perOp) && time.Since(start) < 10*time.Second {
					time.Sleep(100 * time.Microsecond)
				}
				total += time.Since(start)
				b.StopTimer()
				d.stop()
				st := r.Stats()
				events += d.events.Load()
				lost += st.KernelLost
				dropped += st.QueueDropped
				r.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(events)/total.Seconds(), "events/s")
			b.ReportMetric(float64(lost), "lost")
			b.ReportMetric(float64(dropped), "dropped")
		})
	}
}

// BenchmarkRecorderCPU measures the recorder process's own CPU while a child
// produces write events at a fixed rate. One op is one window.
func BenchmarkRecorderCPU(b *testing.B) {
	for _, rate := range []int{10000, 200000} {
		b.Run(strconv.Itoa(rate/1000)+"k", func(b *testing.B) {
			needKernel(b)
			const window = 2 * time.Second
			var cpu, wall time.Duration
			var events, lost uint64
			for b.Loop() {
				w := bpftest.Start(b, "rate", strconv.Itoa(rate), strconv.FormatFloat(window.Seconds(), 'f', -1, 64))
				r := openProbes(b, Options{PIDs: []uint32{w.Info.PID}})
				d := startDrainer(r)
				// Measure the steady state, not the garbage Open leaves behind.
				runtime.GC()
				c0, t0 := selfCPU(b), time.Now()
				w.Run(b)
				for d.writes.Load() < uint64(float64(rate)*window.Seconds()) && time.Since(t0) < window+5*time.Second {
					time.Sleep(time.Millisecond)
				}
				cpu += selfCPU(b) - c0
				wall += time.Since(t0)
				d.stop()
				events += d.events.Load()
				lost += r.Stats().KernelLost
				r.Close()
			}
			b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%core")
			b.ReportMetric(float64(events)/wall.Seconds(), "events/s")
			b.ReportMetric(float64(lost), "lost")
		})
	}
}

func selfCPU(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
