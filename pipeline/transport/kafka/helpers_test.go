package kafka

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// testBrokers returns the brokers of the Kafka that scripts/kafka/kafka.sh started, or skips.
func testBrokers(tb testing.TB) []string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs Kafka; skipped in -short")
	}
	v := os.Getenv("KPROBE_KAFKA_BROKERS")
	if v == "" {
		tb.Skip("KPROBE_KAFKA_BROKERS is not set: run scripts/kafka/kafka.sh start and set KPROBE_KAFKA_BROKERS=127.0.0.1:19092")
	}
	return strings.Split(v, ",")
}

var unsafeTopicChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// testTopics creates n fresh topics for this test and deletes them when it ends, so tests
// sharing one broker never see each other's messages.
func testTopics(tb testing.TB, brokers []string, n, partitions int) []string {
	tb.Helper()
	base := unsafeTopicChars.ReplaceAllString(tb.Name(), "_")
	stamp := time.Now().UnixNano()
	topics := make([]string, n)
	for i := range topics {
		topics[i] = fmt.Sprintf("test.%s.%d.%d", base, stamp, i)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, brokers, topics, partitions); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c := &kafkago.Client{Addr: kafkago.TCP(brokers...)}
		if _, err := c.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: topics}); err != nil {
			tb.Logf("deleting test topics: %v", err)
		}
	})
	return topics
}

func testLogger(tb testing.TB) *slog.Logger {
	if t, ok := tb.(interface{ Output() io.Writer }); ok {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// proxy forwards TCP to one upstream address and can cut every connection on demand, standing
// in for a broker that goes away and comes back without disturbing the real one.
type proxy struct {
	ln       net.Listener
	upstream string
	// latency delays everything the broker sends, as a distant or busy broker would.
	latency time.Duration

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startProxy(tb testing.TB, upstream string) *proxy {
	tb.Helper()
	return startSlowProxy(tb, upstream, 0)
}

// startSlowProxy is startProxy with every answer from the broker delayed by latency.
func startSlowProxy(tb testing.TB, upstream string, latency time.Duration) *proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream, latency: latency, conns: map[net.Conn]struct{}{}}
	go p.serve()
	tb.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go pipe(u, c)
		if p.latency > 0 {
			go delayedPipe(c, u, p.latency)
		} else {
			go pipe(c, u)
		}
	}
}

func pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// delayedPipe copies src to dst, each chunk latency after it was read.
func delayedPipe(dst, src net.Conn, latency time.Duration) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	ch := make(chan chunk, 1024)
	go func() {
		defer close(ch)
		for {
			b := make([]byte, 64<<10)
			n, err := src.Read(b)
			if n > 0 {
				ch <- chunk{b[:n], time.Now().Add(latency)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// cut closes every open connection and refuses new ones until restore.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// dialVia sends every broker connection, whatever address metadata names, through addr.
func dialVia(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
}
