package engine

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/transport/kafka"
)

// BenchmarkPipeline measures kernel events per second from published batches to rows in
// the embedded event log: through the in-process bus (the baseline: the engine and the
// store alone) and through real Kafka (KPROBE_KAFKA_BROKERS), in the same run.
func BenchmarkPipeline(b *testing.B) {
	const perOp = 100_000
	dir := b.TempDir()
	store, err := eventlog.OpenEmbedded(context.Background(), dir, eventlog.Options{Database: "bench"})
	if err != nil {
		b.Skipf("embedded event log unavailable: %v", err)
	}
	defer store.Close()
	seq := uint64(0)
	batches := func() []bus.Message {
		var out []bus.Message
		now := time.Now().UnixNano()
		evs := make([]event.Event, 0, 1024)
		for i := 0; i < perOp; i++ {
			seq++
			pid := uint32(1000 + i%16)
			evs = append(evs, event.Event{ID: seq, TsNs: now + int64(i), Node: "bench", PID: pid, TID: pid, CPU: uint32(i % 2),
				Comm: "bench", Type: event.TypeWrite, DurNs: 1000, Syscall: "write", FD: 3, Bytes: 64})
			if len(evs) == cap(evs) || i == perOp-1 {
				data, err := event.MarshalBatch(evs)
				if err != nil {
					b.Fatal(err)
				}
				out = append(out, bus.Message{Topic: event.TopicSyscall, Key: evs[0].Key(), Value: data})
				evs = evs[:0]
			}
		}
		return out
	}
	drive := func(b *testing.B, src bus.Source, pub func(bus.Message), done func()) {
		eng, err := New(Options{Source: src, Store: store, FlushEvery: 50 * time.Millisecond, Idle: 100 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		runErr := make(chan error, 1)
		go func() { runErr <- eng.Run(ctx) }()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			msgs := batches()
			want := eng.Stats().Written + perOp
			b.StartTimer()
			for _, m := range msgs {
				pub(m)
			}
			for eng.Stats().Written < want {
				time.Sleep(2 * time.Millisecond)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*perOp)/b.Elapsed().Seconds(), "events/s")
		cancel()
		done()
		if err := <-runErr; err != nil {
			b.Fatal(err)
		}
	}
	b.Run("baseline-inproc", func(b *testing.B) {
		mem := bus.NewMemory(1 << 12)
		drive(b, mem, func(m bus.Message) {
			for !mem.Publish(m) {
				time.Sleep(time.Millisecond)
			}
		}, mem.Close)
	})
	b.Run("kafka", func(b *testing.B) {
		brokers := os.Getenv("KPROBE_KAFKA_BROKERS")
		if brokers == "" {
			b.Skip("KPROBE_KAFKA_BROKERS is not set: start Kafka with scripts/kafka/kafka.sh start")
		}
		bl := strings.Split(brokers, ",")
		prefix := fmt.Sprintf("bench%d.", time.Now().UnixNano())
		topic := prefix + event.TopicSyscall
		ctx := context.Background()
		if err := kafka.EnsureTopics(ctx, bl, []string{topic}, 4); err != nil {
			b.Fatal(err)
		}
		prod, err := kafka.NewProducer(kafka.ProducerOptions{Brokers: bl})
		if err != nil {
			b.Fatal(err)
		}
		pctx, stopProd := context.WithCancel(ctx)
		go prod.Run(pctx)
		cons, err := kafka.NewConsumer(kafka.ConsumerOptions{Brokers: bl, GroupID: prefix + "engine", Topics: []string{topic}})
		if err != nil {
			b.Fatal(err)
		}
		drive(b, cons, func(m bus.Message) {
			m.Topic = topic
			for !prod.Publish(m) {
				time.Sleep(time.Millisecond)
			}
		}, func() {
			prod.Close(ctx)
			stopProd()
			cons.Close()
		})
	})
}
