package recorder

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/bpf"
	"github.com/kprobe/kprobe/bpf/bpftest"
	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/event"
)

// The recorder as kprobe-agent record ships it: the probes' default ring
// and queue, and the CLI's sinks (JSONL to a file, protobuf to the bus).

// sinkCase is one of the shipped output paths.
type sinkCase struct {
	name string
	open func(tb testing.TB) (Sink, func())
}

func shippedSinks() []sinkCase {
	return []sinkCase{
		{"jsonl-file", func(tb testing.TB) (Sink, func()) {
			f, err := os.Create(filepath.Join(tb.TempDir(), "events.jsonl"))
			if err != nil {
				tb.Fatal(err)
			}
			s := NewJSONL(f)
			return s, func() { s.Flush(); f.Close() }
		}},
		{"protobuf-bus", func(tb testing.TB) (Sink, func()) {
			mem := bus.NewMemory(1 << 16)
			done := make(chan struct{})
			go func() { // the engine's side of the in-process bus
				defer close(done)
				for {
					if _, err := mem.Fetch(context.Background()); err != nil {
						return
					}
				}
			}()
			return NewPublish(mem, 1024, ""), func() { mem.Close(); <-done }
		}},
	}
}

// recording is one Run of a Recorder into a sink, with its CPU use.
type recording struct {
	r      *Recorder
	cancel context.CancelFunc
	done   chan error
	cpu0   time.Duration
	wall0  time.Time
}

func startRecording(tb testing.TB, opts bpf.Options, sink Sink) *recording {
	tb.Helper()
	r, err := Open(context.Background(), Options{Node: "bench", BPF: opts})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	rec := &recording{r: r, cancel: cancel, done: make(chan error, 1)}
	runtime.GC() // measure the steady state, not what Open left behind
	rec.cpu0, rec.wall0 = selfCPU(tb), time.Now()
	go func() { rec.done <- r.Run(ctx, sink) }()
	return rec
}

// stop ends the recording once what the ring holds is drained and every
// queued batch reached the sink; it returns the CPU share the process used.
func (rec *recording) stop(tb testing.TB) (cpuShare float64, wall time.Duration) {
	tb.Helper()
	rec.cancel()
	if err := <-rec.done; err != nil {
		tb.Fatal(err)
	}
	wall = time.Since(rec.wall0)
	return (selfCPU(tb) - rec.cpu0).Seconds() / wall.Seconds(), wall
}

func selfCPU(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBurst records a C loop of 2 M write(2)s as fast as it runs
// (1.3 M/s on a quiet build machine), in the shipped configuration: the
// probes' defaults and the CLI's sinks. One op is one burst; lost counts
// the writes the kernel or the queue dropped, across all ops.
func BenchmarkBurst(b *testing.B) {
	const writes = 2000000
	for _, sc := range shippedSinks() {
		b.Run(sc.name, func(b *testing.B) {
			bpftest.NeedKernel(b)
			var kernelLost, dropped, recorded uint64
			var cpu, workload time.Duration
			for b.Loop() {
				b.StopTimer()
				w := bpftest.Start(b, "writes", strconv.Itoa(writes))
				sink, closeSink := sc.open(b)
				rec := startRecording(b, bpf.Options{PIDs: []uint32{w.Info.PID}}, sink)
				b.StartTimer()
				t0 := time.Now()
				w.Run(b)
				workload += time.Since(t0)
				share, wall := rec.stop(b)
				b.StopTimer()
				closeSink()
				s := rec.r.Summary()
				recorded += s.Events[event.TypeWrite]
				kernelLost += s.KernelLost
				dropped += s.QueueDropped + s.SinkErrors
				cpu += time.Duration(share * float64(wall))
				rec.r.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(kernelLost), "kernel-lost")
			b.ReportMetric(float64(dropped), "dropped")
			b.ReportMetric(float64(recorded)/float64(b.N), "recorded/op")
			b.ReportMetric(float64(b.N*writes)/workload.Seconds(), "writes/s")
			b.ReportMetric(100*cpu.Seconds()/b.Elapsed().Seconds(), "%core")
		})
	}
}

// BenchmarkRecorderCPU: the recorder's CPU while a child writes at a fixed
// rate, in the shipped configuration. One op is one 2 s window.
func BenchmarkRecorderCPU(b *testing.B) {
	const window = 2 * time.Second
	for _, rate := range []int{10000, 200000} {
		for _, sc := range shippedSinks() {
			b.Run(strconv.Itoa(rate/1000)+"k/"+sc.name, func(b *testing.B) {
				bpftest.NeedKernel(b)
				var cpu, wall time.Duration
				var events, lost uint64
				for b.Loop() {
					w := bpftest.Start(b, "rate", strconv.Itoa(rate), strconv.FormatFloat(window.Seconds(), 'f', -1, 64))
					sink, closeSink := sc.open(b)
					rec := startRecording(b, bpf.Options{PIDs: []uint32{w.Info.PID}}, sink)
					w.Run(b)
					share, d := rec.stop(b)
					closeSink()
					s := rec.r.Summary()
					cpu += time.Duration(share * float64(d))
					wall += d
					for _, n := range s.Events {
						events += n
					}
					lost += s.KernelLost + s.QueueDropped + s.SinkErrors
					rec.r.Close()
				}
				b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%core")
				b.ReportMetric(float64(events)/wall.Seconds(), "events/s")
				b.ReportMetric(float64(lost), "lost")
			})
		}
	}
}

// countingSink counts the events and the writes that reached the sink it
// wraps.
type countingSink struct {
	Sink
	events, writes atomic.Uint64
}

func (c *countingSink) Write(ctx context.Context, evs []event.Event) error {
	err := c.Sink.Write(ctx, evs)
	var w uint64
	for i := range evs {
		if evs[i].Type == event.TypeWrite {
			w++
		}
	}
	c.events.Add(uint64(len(evs)))
	c.writes.Add(w)
	return err
}

// BenchmarkDrain: ring buffer → sink, in the shipped configuration. A child
// fills the default ring (16 MiB) with 80k writes while the recorder is not
// running; then it runs until every event reached the sink.
func BenchmarkDrain(b *testing.B) {
	const writes = 80000
	for _, sc := range shippedSinks() {
		b.Run(sc.name, func(b *testing.B) {
			bpftest.NeedKernel(b)
			var total time.Duration
			var events, lost uint64
			for b.Loop() {
				b.StopTimer()
				w := bpftest.Start(b, "writes", strconv.Itoa(writes))
				r, err := Open(context.Background(), Options{Node: "bench", BPF: bpf.Options{PIDs: []uint32{w.Info.PID}}})
				if err != nil {
					b.Fatal(err)
				}
				w.Run(b)
				inner, closeSink := sc.open(b)
				sink := &countingSink{Sink: inner}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				b.StartTimer()
				start := time.Now()
				go func() { done <- r.Run(ctx, sink) }()
				// Hand the last partial chunk over once the ring is read,
				// not at the next flush deadline.
				if err := r.probes.Flush(); err != nil {
					b.Fatal(err)
				}
				for sink.writes.Load() < writes && time.Since(start) < 20*time.Second {
					time.Sleep(100 * time.Microsecond)
				}
				n := sink.events.Load()
				total += time.Since(start)
				b.StopTimer()
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				closeSink()
				s := r.Summary()
				events += n
				lost += s.KernelLost + s.QueueDropped + s.SinkErrors
				r.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(events)/total.Seconds(), "events/s")
			b.ReportMetric(float64(lost), "lost")
		})
	}
}
