package kafka

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// keyedMessage encodes key and sequence number so a consumer can check order per key.
func keyedMessage(topic string, key, seq int) Message {
	return Message{
		Topic: topic,
		Key:   []byte("key-" + strconv.Itoa(key)),
		Value: fmt.Appendf(nil, "%d:%d:%s", key, seq, strings.Repeat("x", 100)),
	}
}

func parseKeyed(tb testing.TB, m Message) (key, seq int) {
	tb.Helper()
	parts := strings.SplitN(string(m.Value), ":", 3)
	if len(parts) != 3 {
		tb.Fatalf("unexpected value %q", m.Value)
	}
	key, _ = strconv.Atoi(parts[0])
	seq, _ = strconv.Atoi(parts[1])
	return key, seq
}

func runProducer(tb testing.TB, opts ProducerOptions) *Producer {
	tb.Helper()
	p, err := NewProducer(opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	tb.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		p.Close(cctx)
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	return p
}

func newConsumer(tb testing.TB, brokers []string, group string, topics []string) *Consumer {
	tb.Helper()
	c, err := NewConsumer(ConsumerOptions{Logger: testLogger(tb), Brokers: brokers, GroupID: group, Topics: topics})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// fetchN fetches exactly n messages, failing the test if they do not arrive in time.
func fetchN(tb testing.TB, c *Consumer, n int, timeout time.Duration) []Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := make([]Message, 0, n)
	for len(out) < n {
		m, err := c.Fetch(ctx)
		if err != nil {
			tb.Fatalf("fetched %d of %d messages: %v", len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

// expectNoMore fails if c delivers anything within wait.
func expectNoMore(tb testing.TB, c *Consumer, wait time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if m, err := c.Fetch(ctx); err == nil {
		tb.Fatalf("unexpected extra message %s/%d@%d: %q", m.Topic, m.Partition, m.Offset, m.Value)
	}
}

// checkKeyed verifies that msgs hold seq 0..perKey-1 for each of keys keys, each exactly once
// and in order per key.
func checkKeyed(tb testing.TB, msgs []Message, keys, perKey int) {
	tb.Helper()
	next := make([]int, keys)
	partitionOf := make(map[int]int)
	for _, m := range msgs {
		k, s := parseKeyed(tb, m)
		if s != next[k] {
			tb.Fatalf("key %d: got seq %d, want %d (partition %d offset %d)", k, s, next[k], m.Partition, m.Offset)
		}
		next[k]++
		if p, ok := partitionOf[k]; ok && p != m.Partition {
			tb.Fatalf("key %d seen in partitions %d and %d", k, p, m.Partition)
		}
		partitionOf[k] = m.Partition
	}
	for k, n := range next {
		if n != perKey {
			tb.Fatalf("key %d: got %d messages, want %d", k, n, perKey)
		}
	}
}

func TestProduceConsumeKeyedOrder(t *testing.T) {
	brokers := testBrokers(t)
	topics := testTopics(t, brokers, 2, 4)
	const keys, perKey = 64, 200 // 25,600 messages over two topics

	p := runProducer(t, ProducerOptions{Logger: testLogger(t), Brokers: brokers})
	for s := range perKey {
		for k := range keys {
			if !p.Publish(keyedMessage(topics[k%2], k, s)) {
				t.Fatalf("Publish refused message %d/%d", k, s)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Written != keys*perKey || st.Dropped != 0 || st.Discarded != 0 || st.Buffered != 0 {
		t.Fatalf("producer stats %+v, want all %d written", st, keys*perKey)
	}

	c := newConsumer(t, brokers, "g-"+topics[0], topics)
	defer c.Close()
	msgs := fetchN(t, c, keys*perKey, 60*time.Second)
	checkKeyed(t, msgs, keys, perKey)
	expectNoMore(t, c, time.Second)
}

func TestUncommittedMessagesAreRedelivered(t *testing.T) {
	brokers := testBrokers(t)
	topics := testTopics(t, brokers, 2, 1)
	group := "g-" + topics[0]

	p := runProducer(t, ProducerOptions{Brokers: brokers})
	const perTopic = 10
	for i := range perTopic {
		for _, topic := range topics {
			p.Publish(keyedMessage(topic, 0, i))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// First member fetches everything, commits only the first four of topic 0, and leaves.
	c1 := newConsumer(t, brokers, group, topics)
	got := fetchN(t, c1, 2*perTopic, 30*time.Second)
	var commit []Message
	for _, m := range got {
		if m.Topic == topics[0] && m.Offset == 3 {
			commit = append(commit, m)
		}
	}
	if len(commit) != 1 {
		t.Fatalf("offset 3 of %s not fetched", topics[0])
	}
	if err := c1.Commit(ctx, commit...); err != nil {
		t.Fatal(err)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Fetch(ctx); err != ErrClosed {
		t.Fatalf("Fetch after Close = %v, want ErrClosed", err)
	}

	// The next member gets topic 0 from offset 4 and all of topic 1 again.
	c2 := newConsumer(t, brokers, group, topics)
	again := fetchN(t, c2, 2*perTopic-4, 30*time.Second)
	first := map[string]int64{}
	for _, m := range again {
		if _, ok := first[m.Topic]; !ok {
			first[m.Topic] = m.Offset
		}
	}
	if first[topics[0]] != 4 || first[topics[1]] != 0 {
		t.Fatalf("redelivery started at %v, want %s@4 and %s@0", first, topics[0], topics[1])
	}
	expectNoMore(t, c2, time.Second)
	// Commit everything; a third member then has nothing to read.
	if err := c2.Commit(ctx, again...); err != nil {
		t.Fatal(err)
	}
	c2.Close()

	c3 := newConsumer(t, brokers, group, topics)
	defer c3.Close()
	expectNoMore(t, c3, 3*time.Second)
}

// TestPublishNeverBlocksWhileBrokerDown points a running producer at a port nothing listens
// on: Publish must stay fast, accept exactly the buffer's worth and count every drop.
func TestPublishNeverBlocksWhileBrokerDown(t *testing.T) {
	if testing.Short() {
		t.Skip("dials loopback and waits for retries")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	const buffer, extra = 5000, 2345
	p, err := NewProducer(ProducerOptions{Logger: testLogger(t), Brokers: []string{dead}, BufferMessages: buffer, BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)

	value := make([]byte, 1024)
	var slowest time.Duration
	start := time.Now()
	for i := range buffer + extra {
		t0 := time.Now()
		p.Publish(Message{Topic: "events", Key: []byte(strconv.Itoa(i)), Value: value})
		slowest = max(slowest, time.Since(t0))
	}
	total := time.Since(start)
	t.Logf("%d publishes in %v, slowest %v", buffer+extra, total, slowest)
	// A Publish that waited on the writer would wait for its retry backoff (100 ms, then
	// more) on each of the extra calls: minutes in all. The bounds are far from that and
	// far from what a loaded 2-core -race run measured (66 ms in all, 46 ms for the slowest
	// call), which a descheduled thread can stretch.
	if total > 30*time.Second || slowest > 2*time.Second {
		t.Errorf("Publish blocked: total %v, slowest %v", total, slowest)
	}
	waitFor(t, 10*time.Second, "write errors", func() bool { return p.Stats().WriteErrors >= 2 })
	st := p.Stats()
	want := ProducerStats{Enqueued: buffer, Dropped: extra, Buffered: buffer, WriteErrors: st.WriteErrors}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}

	cctx, ccancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer ccancel()
	err = p.Close(cctx)
	if err == nil || !strings.Contains(err.Error(), "scripts/kafka/kafka.sh start") {
		t.Fatalf("Close = %v, want an error naming the fix", err)
	}
	if st := p.Stats(); st.Discarded != buffer || st.Buffered != 0 {
		t.Fatalf("after Close: stats %+v, want %d discarded", st, buffer)
	}
}

func TestEnsureTopicsNamesTheFix(t *testing.T) {
	if testing.Short() {
		t.Skip("dials loopback")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := EnsureTopics(ctx, []string{"127.0.0.1:1"}, []string{"events"}, 4)
	if err == nil || !strings.Contains(err.Error(), "connecting to kafka at 127.0.0.1:1") ||
		!strings.Contains(err.Error(), "scripts/kafka/kafka.sh start") {
		t.Fatalf("EnsureTopics = %v, want a connection error naming the fix", err)
	}
}

// TestProducerResumesAfterOutage cuts the producer's connections with a proxy in front of
// the real broker, keeps publishing, and checks everything buffered arrives once it is back.
func TestProducerResumesAfterOutage(t *testing.T) {
	brokers := testBrokers(t)
	topics := testTopics(t, brokers, 1, 4)
	px := startProxy(t, brokers[0])

	p := runProducer(t, ProducerOptions{Logger: testLogger(t), Brokers: []string{px.addr()}, dial: dialVia(px.addr())})
	const keys, perPhase = 16, 100
	seq := 0
	publishPhase := func() {
		for range perPhase {
			for k := range keys {
				if !p.Publish(keyedMessage(topics[0], k, seq)) {
					t.Fatalf("Publish refused %d/%d", k, seq)
				}
			}
			seq++
		}
	}

	publishPhase()
	waitFor(t, 20*time.Second, "first phase written", func() bool { return p.Stats().Written == keys*perPhase })

	px.cut()
	errsBefore := p.Stats().WriteErrors
	publishPhase()
	waitFor(t, 20*time.Second, "write errors during the outage", func() bool { return p.Stats().WriteErrors > errsBefore })
	if st := p.Stats(); st.Buffered == 0 || st.Written != keys*perPhase {
		t.Fatalf("during outage: stats %+v, want phase two buffered", st)
	}
	publishPhase()
	// Stay down through a few backoff rounds before coming back.
	waitFor(t, 20*time.Second, "retries during the outage", func() bool { return p.Stats().WriteErrors >= errsBefore+3 })

	px.restore()
	waitFor(t, 30*time.Second, "buffer drained", func() bool { return p.Stats().Written == 3*keys*perPhase })
	if st := p.Stats(); st.Dropped != 0 || st.Discarded != 0 || st.Buffered != 0 {
		t.Fatalf("after outage: stats %+v", st)
	}

	c := newConsumer(t, brokers, "g-"+topics[0], topics)
	defer c.Close()
	checkKeyed(t, fetchN(t, c, 3*keys*perPhase, 60*time.Second), keys, 3*perPhase)
	expectNoMore(t, c, time.Second)
}
