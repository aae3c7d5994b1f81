package recorder

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kprobe/kprobe/bpf"
	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/event"
)

// writeBatch is a batch of write(2) events as the probes deliver them.
func writeBatch(n int) []bpf.Event {
	b := make([]bpf.Event, n)
	for i := range b {
		b[i] = bpf.Event{
			KtimeNs: uint64(1e9 + i*1000), DurNs: 500, PID: 4242, TID: 4242, CPU: uint32(i % 2),
			Comm: "wloop", CgroupID: 1234, Type: bpf.EventWrite, Syscall: "write", FD: 3, Ret: 64,
			Dev: 5, Ino: 6,
		}
	}
	return b
}

// BenchmarkSinks: the consumer's share per event, after the probes: Convert,
// then the sink (JSONL to a file, protobuf batches to an in-process bus).
func BenchmarkSinks(b *testing.B) {
	in := writeBatch(1024)
	clock := bpf.NewClock()
	convert := func(out []event.Event) {
		for i := range in {
			Convert("node-1", clock, &in[i], &out[i])
		}
	}
	b.Run("convert", func(b *testing.B) {
		out := make([]event.Event, len(in))
		b.ReportAllocs()
		for b.Loop() {
			convert(out)
		}
		b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("jsonl-file", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "e.jsonl"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		sink := NewJSONL(f)
		out := make([]event.Event, len(in))
		b.ReportAllocs()
		for b.Loop() {
			convert(out)
			if err := sink.Write(context.Background(), out); err != nil {
				b.Fatal(err)
			}
		}
		sink.Flush()
		b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("protobuf-bus", func(b *testing.B) {
		mem := bus.NewMemory(1 << 20)
		go func() {
			for {
				if _, err := mem.Fetch(context.Background()); err != nil {
					return
				}
			}
		}()
		defer mem.Close()
		sink := NewPublish(mem, 1024, "")
		out := make([]event.Event, len(in))
		b.ReportAllocs()
		for b.Loop() {
			convert(out)
			if err := sink.Write(context.Background(), out); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(in))/b.Elapsed().Seconds(), "events/s")
	})
}
