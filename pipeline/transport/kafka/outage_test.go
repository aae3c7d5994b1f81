package kafka

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer is a goroutine-safe log sink that tests can search.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	out io.Writer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.out != nil {
		b.out.Write(p)
	}
	return b.buf.Write(p)
}

// count returns how many lines contain s.
func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, line := range strings.Split(b.buf.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// capturingLogger logs at level into a buffer (and the test's output).
func capturingLogger(tb testing.TB, level slog.Level) (*slog.Logger, *logBuffer) {
	tb.Helper()
	b := &logBuffer{}
	if t, ok := tb.(interface{ Output() io.Writer }); ok {
		b.out = t.Output()
	}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level})), b
}

const (
	logDown = "kafka unreachable"
	logBack = "kafka reachable again"
)

// TestConsumerQuietOnEmptyTopics: a consumer polling empty partitions of a broker whose
// answers take 150 ms logs no warnings. With a 250 ms MaxWait, kafka-go's read deadline left
// the broker's answer to an empty poll 62 ms: every poll of every partition timed out,
// dropped its connection and logged a warning (some 20 lines at every start on a busy
// machine, where the broker's answers are as slow).
func TestConsumerQuietOnEmptyTopics(t *testing.T) {
	brokers := testBrokers(t)
	topics := testTopics(t, brokers, 5, 4)
	px := startSlowProxy(t, brokers[0], 150*time.Millisecond)
	log, logs := capturingLogger(t, slog.LevelInfo)
	c, err := NewConsumer(ConsumerOptions{Logger: log, Brokers: []string{px.addr()}, GroupID: "g-" + topics[0],
		Topics: topics, dial: dialVia(px.addr())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Poll until each of the 20 partitions has been asked twice (the counters prove the
	// polls ran, so "no warning" is not "nothing happened").
	var fetches, errs int64
	deadline := time.Now().Add(60 * time.Second)
	for fetches < 2*20 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d empty polls in 60 s", fetches)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if m, err := c.Fetch(ctx); err == nil {
			t.Fatalf("fetched %+v from an empty topic", m)
		} else if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Fetch = %v, want only its deadline", err)
		}
		cancel()
		st := c.r.Stats() // counters since the last call
		fetches += st.Fetches
		errs += st.Errors
	}
	if errs != 0 || logs.count("level=WARN") != 0 || logs.count("level=ERROR") != 0 {
		t.Fatalf("%d errors over %d empty polls; log:\n%s", errs, fetches, logs.String())
	}
	t.Logf("%d empty polls, no error", fetches)
}

// TestConsumerSurvivesOutage cuts every connection of a consumer (a proxy in front of the
// real broker) while messages keep arriving: Fetch and Commit wait or fail without ending
// the consumer, the outage is logged once when it begins and once when it ends, and every
// message arrives exactly once, in order per key, once Kafka is back.
func TestConsumerSurvivesOutage(t *testing.T) {
	brokers := testBrokers(t)
	topics := testTopics(t, brokers, 1, 4)
	px := startProxy(t, brokers[0])
	p := runProducer(t, ProducerOptions{Logger: testLogger(t), Brokers: brokers})
	const keys, perPhase = 8, 50
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

	log, logs := capturingLogger(t, slog.LevelInfo)
	c, err := NewConsumer(ConsumerOptions{Logger: log, Brokers: []string{px.addr()}, GroupID: "g-" + topics[0],
		Topics: topics, dial: dialVia(px.addr())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	publishPhase()
	got := fetchN(t, c, keys*perPhase, 60*time.Second)
	if err := c.Commit(context.Background(), got...); err != nil {
		t.Fatalf("Commit before the outage: %v", err)
	}

	px.cut()
	publishPhase() // straight to the broker: waiting for the consumer
	// Fetch keeps waiting through the outage, not returning kafka-go's errors.
	type fetched struct {
		m   Message
		err error
	}
	results := make(chan fetched, keys*perPhase)
	fetchCtx, stopFetch := context.WithCancel(context.Background())
	var fetching sync.WaitGroup
	fetching.Add(1)
	go func() {
		defer fetching.Done()
		for n := 0; n < keys*perPhase; n++ {
			m, err := c.Fetch(fetchCtx)
			results <- fetched{m, err}
			if err != nil {
				return
			}
		}
	}()
	defer func() { stopFetch(); fetching.Wait() }()
	waitFor(t, 60*time.Second, "the outage to be logged", func() bool { return logs.count(logDown) > 0 })
	// A commit while Kafka is away fails when its deadline passes; the consumer lives on.
	cctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	if err := c.Commit(cctx, got[len(got)-1]); err == nil {
		t.Errorf("Commit succeeded with every connection cut")
	}
	cancel()
	select {
	case r := <-results:
		t.Fatalf("Fetch returned during the outage: %+v", r)
	default:
	}

	px.restore()
	var second []Message
	timeout := time.After(90 * time.Second)
	for len(second) < keys*perPhase {
		select {
		case r := <-results:
			if r.err != nil {
				t.Fatalf("Fetch after the outage: %v (%d of %d fetched)", r.err, len(second), keys*perPhase)
			}
			second = append(second, r.m)
		case <-timeout:
			t.Fatalf("fetched %d of %d messages within 90 s of Kafka coming back", len(second), keys*perPhase)
		}
	}
	if err := c.Commit(context.Background(), second...); err != nil {
		t.Fatalf("Commit after the outage: %v", err)
	}
	checkKeyed(t, append(got, second...), keys, 2*perPhase)
	waitFor(t, 10*time.Second, "the end of the outage to be logged", func() bool { return logs.count(logBack) > 0 })
	if down, back := logs.count(logDown), logs.count(logBack); down != 1 || back != 1 {
		t.Errorf("logged the outage %d times and its end %d times, want once each:\n%s", down, back, logs.String())
	}
	if n := logs.count("level=WARN"); n != 1 {
		t.Errorf("%d warnings, want the outage's one:\n%s", n, logs.String())
	}
}
