package kafka

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

const (
	benchValueSize = 1024
	benchKeys      = 256
	benchChunk     = 1000 // messages per WriteMessages call in the baseline
)

// benchValues builds values that compress about as well as encoded event batches: varint
// timestamps and ids mixed with repeated command names and paths.
func benchValues(n int) [][]byte {
	words := []string{"nginx", "postgres", "/usr/lib/x86_64-linux-gnu/libc.so.6", "GET /api/v1/orders",
		"tcp_sendmsg", "10.0.3.17:5432", "sched_switch", "java", "page_fault_user", "/var/lib/data"}
	r := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, n)
	for i := range out {
		v := make([]byte, 0, benchValueSize)
		for len(v) < benchValueSize-48 {
			v = binary.AppendUvarint(v, r.Uint64()>>r.IntN(40))
			v = binary.AppendUvarint(v, uint64(r.IntN(1<<20)))
			v = append(v, words[r.IntN(len(words))]...)
		}
		out[i] = v[:benchValueSize-48]
	}
	return out
}

// BenchmarkProduce measures sustained producer throughput against the real broker. One op
// is a chunk of 1000 messages of ~1 KiB over 256 keys. "tuned" is this package's Producer;
// "baseline-default" is kafka-go's Writer with its default settings (batches of 100 per
// partition, 1 s batch timeout), given each chunk in one synchronous WriteMessages call.
//
//	KPROBE_KAFKA_BROKERS=127.0.0.1:19092 go test -run '^$' -bench Produce -count 6 ./pipeline/transport/kafka/
func BenchmarkProduce(b *testing.B) {
	brokers := testBrokers(b)
	values := benchValues(512)
	keys := make([][]byte, benchKeys)
	for i := range keys {
		keys[i] = []byte("conn-" + strconv.Itoa(i))
	}
	// Topics are made here, once: the sub-benchmarks run several times with growing b.N.
	topics := testTopics(b, brokers, 2, 4)
	msgSize := float64(len(values[0]) + len(keys[0]))

	report := func(b *testing.B, elapsed time.Duration) {
		msgs := float64(b.N*benchChunk) / elapsed.Seconds()
		b.ReportMetric(msgs, "msgs/s")
		b.ReportMetric(msgs*msgSize/1e6, "MB/s")
	}

	b.Run("baseline-default", func(b *testing.B) {
		w := &kafkago.Writer{Addr: kafkago.TCP(brokers...), Balancer: &kafkago.Hash{}}
		defer w.Close()
		chunk := make([]kafkago.Message, benchChunk)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for n := 0; n < b.N; n++ {
			for i := range chunk {
				j := n*benchChunk + i
				chunk[i] = kafkago.Message{Topic: topics[0], Key: keys[j%benchKeys], Value: values[j%len(values)]}
			}
			if err := w.WriteMessages(ctx, chunk...); err != nil {
				b.Fatal(err)
			}
		}
		report(b, time.Since(start))
	})

	b.Run("tuned", func(b *testing.B) {
		p, err := NewProducer(ProducerOptions{Brokers: brokers})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go p.Run(ctx)
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for n := 0; n < b.N; n++ {
			for i := range benchChunk {
				j := n*benchChunk + i
				m := Message{Topic: topics[1], Key: keys[j%benchKeys], Value: values[j%len(values)]}
				// Sustained load: wait for room rather than measure the drop path.
				for !p.Publish(m) {
					runtime.Gosched()
				}
			}
		}
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		if err := p.Close(cctx); err != nil {
			b.Fatal(err)
		}
		report(b, time.Since(start))
		if st := p.Stats(); st.Written != uint64(b.N*benchChunk) {
			b.Fatalf("wrote %d of %d (stats %+v)", st.Written, b.N*benchChunk, st)
		}
	})
}
