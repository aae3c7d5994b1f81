package main

// End-to-end tests of the Kafka path: `record --kafka` publishes, `engine` consumes,
// correlates and writes the embedded event log, `kprobe-tui events` reads it back. They
// run the real binaries against the real Kafka of scripts/kafka/kafka.sh (the shared one at
// $KPROBE_KAFKA_BROKERS, or a private one for the outage test) and the real kernel.
//
// Every test uses its own topic prefix and consumer groups, so runs never see each other's
// data on the shared broker. Helpers here are prefixed with e2e to stay out of the way of
// the other test files of this package.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/transport/kafka"
)

// e2eBrokers returns the shared test Kafka, or skips saying why. CI (make test) runs as root
// with KPROBE_KAFKA_BROKERS set, so there these tests always run.
func e2eBrokers(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Kafka and the embedded ClickHouse engine: not in -short")
	}
	b := os.Getenv("KPROBE_KAFKA_BROKERS")
	if b == "" {
		t.Skip("KPROBE_KAFKA_BROKERS is not set: start Kafka with scripts/kafka/kafka.sh start and set KPROBE_KAFKA_BROKERS=127.0.0.1:19092 (make test does both)")
	}
	return b
}

var (
	e2eToolsOnce sync.Once
	e2eToolsDir  string
	e2eToolsErr  error
)

// e2eTools builds kprobe-tui and kprobe-demo once per test binary and returns their paths.
func e2eTools(t *testing.T) (tui, demo string) {
	t.Helper()
	e2eToolsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kprobe-agent-e2e")
		if err != nil {
			e2eToolsErr = err
			return
		}
		e2eToolsDir = dir
		out, err := exec.Command("go", append(goBuild(), "-o", dir+"/", "../kprobe-tui", "../kprobe-demo")...).CombinedOutput()
		if err != nil {
			e2eToolsErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if e2eToolsErr != nil {
		t.Fatalf("building kprobe-tui and kprobe-demo: %v", e2eToolsErr)
	}
	return filepath.Join(e2eToolsDir, "kprobe-tui"), filepath.Join(e2eToolsDir, "kprobe-demo")
}

// e2ePrefix returns a topic prefix and a consumer group nobody else uses. With brokers, the
// topics of the prefix are deleted from them when the test ends.
func e2ePrefix(t *testing.T, brokers string) (prefix, group string) {
	n := time.Now().UnixNano()
	prefix, group = fmt.Sprintf("e2e%d.", n), fmt.Sprintf("e2e-engine-%d", n)
	if brokers != "" {
		t.Cleanup(func() { e2eDeleteTopics(t, brokers, prefix) })
	}
	return prefix, group
}

func e2eDeleteTopics(t *testing.T, brokers, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	client := &kafkago.Client{Addr: kafkago.TCP(splitBrokers(brokers)...), Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafkago.MetadataRequest{})
	if err != nil {
		t.Logf("listing topics to delete: %v", err)
		return
	}
	var topics []string
	for _, tp := range md.Topics {
		if strings.HasPrefix(tp.Name, prefix) {
			topics = append(topics, tp.Name)
		}
	}
	if len(topics) == 0 {
		return
	}
	res, err := client.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: topics})
	if err == nil {
		for _, e := range res.Errors {
			if e != nil {
				err = e
				break
			}
		}
	}
	if err != nil {
		t.Logf("deleting the test's topics %v: %v", topics, err)
	}
}

// e2eFreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func e2eFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// e2eFreePortPair returns a port p such that p and p+1 are both free (Kafka's client and
// controller listeners). It picks them below Linux's ephemeral range, so that no outgoing
// connection takes them while the private broker is down.
func e2eFreePortPair(t *testing.T) int {
	t.Helper()
	free := func(p int) bool {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		l.Close()
		return true
	}
	for range 200 {
		p := 20000 + rand.IntN(12000)
		if free(p) && free(p+1) {
			return p
		}
	}
	t.Fatal("no free pair of adjacent ports in 20000-32000")
	return 0
}

// e2eBuffer is a bytes.Buffer safe for a subprocess writing while the test reads.
type e2eBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *e2eBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *e2eBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// e2eProc is a subprocess in its own process group; t.Cleanup kills the group if the test
// leaves it running.
type e2eProc struct {
	name string
	cmd  *exec.Cmd
	out  e2eBuffer // stdout and stderr
	done chan struct{}
	err  error
}

func e2eStart(t *testing.T, name string, argv ...string) *e2eProc {
	t.Helper()
	p := &e2eProc{name: name, cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		t.Logf("killing %s (pid %d), still running at the end of the test", name, p.cmd.Process.Pid)
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) did not exit after SIGKILL", name, p.cmd.Process.Pid)
		}
	})
	return p
}

// e2eExited reports whether the process has exited.
func e2eExited(p *e2eProc) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit and returns its error; it fails the test (after
// killing the process) when that takes longer than timeout. A Go process is first sent
// SIGQUIT, so the output shows where each of its goroutines was: slow or stuck.
func (p *e2eProc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		syscall.Kill(p.cmd.Process.Pid, syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		t.Fatalf("%s did not exit within %v; killed it (SIGQUIT, then SIGKILL). Output:\n%s", p.name, timeout, p.out.String())
		return nil
	}
}

// waitOutput waits until the output contains s, failing the test if the process exits or
// timeout passes first.
func (p *e2eProc) waitOutput(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.out.String(), s) {
		select {
		case <-p.done:
			t.Fatalf("%s exited (%v) before printing %q:\n%s", p.name, p.err, s, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %q within %v:\n%s", p.name, s, timeout, p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// e2eEngine starts `kprobe-agent engine` on data, prefix and group, with OTLP/gRPC on
// otlpPort (0: none), and waits until it consumes and listens.
func e2eEngine(t *testing.T, brokers, data, prefix, group string, otlpPort int) *e2eProc {
	t.Helper()
	grpc := ""
	if otlpPort != 0 {
		grpc = "127.0.0.1:" + strconv.Itoa(otlpPort)
	}
	p := e2eStart(t, "engine", agent(t), "engine", "--kafka", brokers, "--data", data, "--group", group,
		"--topic-prefix", prefix, "--otlp-grpc", grpc, "--otlp-http", "")
	p.waitOutput(t, "engine running", 3*time.Minute)
	return p
}

var e2eEngineLine = regexp.MustCompile(`engine: messages=(\d+) events=(\d+) spans=(\d+) written=(\d+) dead_lettered=(\d+) commits=(\d+)`)

type e2eEngineStats struct{ messages, events, spans, written, deadLettered, commits uint64 }

// e2eStopEngine sends SIGTERM, expects a clean exit and returns the engine's summary.
func e2eStopEngine(t *testing.T, p *e2eProc) e2eEngineStats {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signalling engine: %v", err)
	}
	if err := p.wait(t, 2*time.Minute); err != nil {
		t.Fatalf("engine exited with %v after SIGTERM:\n%s", err, p.out.String())
	}
	out := p.out.String()
	m := e2eEngineLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("engine printed no summary:\n%s", out)
	}
	n := func(i int) uint64 { v, _ := strconv.ParseUint(m[i], 10, 64); return v }
	return e2eEngineStats{n(1), n(2), n(3), n(4), n(5), n(6)}
}

// e2eGrab returns the unsigned integer captured by re in s.
func e2eGrab(t *testing.T, s, re string) uint64 {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, s)
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", re, err)
	}
	return n
}

// recordSummary is what `record --kafka` prints at exit.
type recordSummary struct {
	recorded, published, publishDropped                             uint64
	enqueued, written, kafkaDropped, discarded, writeErrors, kernel uint64
	userspace                                                       uint64
}

func e2eRecordSummary(t *testing.T, out string) recordSummary {
	t.Helper()
	g := func(re string) uint64 { return e2eGrab(t, out, `(?m)^`+re) }
	return recordSummary{
		recorded:       g(`recorded (\d+) events: `),
		kernel:         g(`lost: kernel=(\d+) `),
		userspace:      g(`lost: kernel=\d+ \(ring buffer full\) userspace=(\d+) `),
		published:      g(`published: events=(\d+) dropped=\d+$`),
		publishDropped: g(`published: events=\d+ dropped=(\d+)$`),
		enqueued:       g(`kafka: enqueued=(\d+) `),
		written:        g(`kafka: enqueued=\d+ written=(\d+) `),
		kafkaDropped:   g(`kafka: enqueued=\d+ written=\d+ dropped=(\d+) `),
		discarded:      g(`kafka: enqueued=\d+ written=\d+ dropped=\d+ \(buffer full\) discarded=(\d+) `),
		writeErrors:    g(`kafka: .* write_errors=(\d+)$`),
	}
}

// e2eStored reads every event of the event log under data with kprobe-tui. The engine must
// have exited: only one process may open the embedded store.
func e2eStored(t *testing.T, data string) []map[string]any {
	t.Helper()
	tui, _ := e2eTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tui, "events", "--data", data, "--from", "1", "--format", "jsonl")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kprobe-tui events: %v\n%s", err, errb.String())
	}
	var evs []map[string]any
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad jsonl line %q: %v", sc.Text(), err)
		}
		evs = append(evs, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(len(evs)) + " events"; !strings.Contains(errb.String(), want) {
		t.Errorf("kprobe-tui stderr %q does not say %q", errb.String(), want)
	}
	return evs
}

// e2eUniqueIDs fails the test on an event without an id or an id seen twice, and returns
// the ids.
func e2eUniqueIDs(t *testing.T, evs []map[string]any) map[string]bool {
	t.Helper()
	ids := make(map[string]bool, len(evs))
	dups := 0
	for _, e := range evs {
		id, _ := e["id"].(string)
		if id == "" {
			t.Fatalf("stored event without id: %v", e)
		}
		if ids[id] {
			if dups++; dups <= 5 {
				t.Errorf("event id %s stored twice: %v", id, e)
			}
		}
		ids[id] = true
	}
	if dups > 0 {
		t.Errorf("%d duplicate event ids among %d stored events", dups, len(evs))
	}
	return ids
}

// e2eLag returns, for the group on topics, the messages not yet committed (end offset minus
// committed offset, summed over partitions) and the total end offset. With group "" it
// only reads the end offsets.
func e2eLag(ctx context.Context, brokers, group string, topics []string) (lag, end int64, err error) {
	return e2eLagOf(ctx, &kafkago.Client{Addr: kafkago.TCP(splitBrokers(brokers)...), Timeout: 10 * time.Second}, group, topics)
}

// e2eLagOf is e2eLag through client (a secured cluster's, say).
func e2eLagOf(ctx context.Context, client *kafkago.Client, group string, topics []string) (lag, end int64, err error) {
	md, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: topics})
	if err != nil {
		return 0, 0, err
	}
	offReq := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
	fetchReq := &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{}}
	for _, tp := range md.Topics {
		if tp.Error != nil {
			return 0, 0, fmt.Errorf("topic %s: %w", tp.Name, tp.Error)
		}
		for _, p := range tp.Partitions {
			offReq.Topics[tp.Name] = append(offReq.Topics[tp.Name], kafkago.LastOffsetOf(p.ID))
			fetchReq.Topics[tp.Name] = append(fetchReq.Topics[tp.Name], p.ID)
		}
	}
	offs, err := client.ListOffsets(ctx, offReq)
	if err != nil {
		return 0, 0, err
	}
	got := map[string]map[int]int64{}
	committed := &kafkago.OffsetFetchResponse{}
	if group != "" {
		if committed, err = client.OffsetFetch(ctx, fetchReq); err != nil {
			return 0, 0, err
		}
		if committed.Error != nil {
			return 0, 0, committed.Error
		}
	}
	for tp, parts := range committed.Topics {
		got[tp] = map[int]int64{}
		for _, p := range parts {
			if p.Error != nil {
				return 0, 0, p.Error
			}
			got[tp][p.Partition] = p.CommittedOffset
		}
	}
	for tp, parts := range offs.Topics {
		for _, p := range parts {
			if p.Error != nil {
				return 0, 0, p.Error
			}
			end += p.LastOffset
			c := got[tp][p.Partition]
			if c < 0 { // nothing committed yet
				c = 0
			}
			lag += p.LastOffset - c
		}
	}
	return lag, end, nil
}

// e2eWaitCaughtUp waits until the engine's group has committed everything on the kernel
// topics of prefix. The engine commits only what it has written to the event log, so then
// the store holds every published event.
func e2eWaitCaughtUp(t *testing.T, brokers, group, prefix string, eng *e2eProc, timeout time.Duration) {
	t.Helper()
	e2eWaitCaughtUpOf(t, &kafkago.Client{Addr: kafkago.TCP(splitBrokers(brokers)...), Timeout: 10 * time.Second}, group, prefix, eng, timeout)
}

// e2eWaitCaughtUpOf is e2eWaitCaughtUp through client.
func e2eWaitCaughtUpOf(t *testing.T, client *kafkago.Client, group, prefix string, eng *e2eProc, timeout time.Duration) {
	t.Helper()
	topics := prefixed(prefix, event.KernelTopics...)
	deadline := time.Now().Add(timeout)
	var lag, end int64
	var err error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lag, end, err = e2eLagOf(ctx, client, group, topics)
		cancel()
		if err == nil && end > 0 && lag == 0 {
			return
		}
		select {
		case <-eng.done:
			t.Fatalf("engine exited (%v) while catching up:\n%s", eng.err, eng.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine group %s not caught up after %v: lag %d of %d messages (err %v)\nengine output:\n%s",
				group, timeout, lag, end, err, eng.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// e2eWaitOffsets waits until cond holds of the group's committed and the broker's end
// offsets on topics (summed over partitions), and returns them. It fails the test when
// one of procs exits first or timeout passes: a bound for failures only, so it is loose.
func e2eWaitOffsets(t *testing.T, brokers, group string, topics []string, what string, timeout time.Duration,
	procs []*e2eProc, cond func(committed, end int64) bool) (committed, end int64) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		lag, end, err := e2eLag(ctx, brokers, group, topics)
		cancel()
		if err == nil && cond(end-lag, end) {
			return end - lag, end
		}
		for _, p := range procs {
			if e2eExited(p) {
				t.Fatalf("%s exited (%v) %s:\n%s", p.name, p.err, what, p.out.String())
			}
		}
		if time.Now().After(deadline) {
			var outs strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&outs, "%s:\n%s\n", p.name, p.out.String())
			}
			t.Fatalf("%s: not within %v (committed %d of %d, err %v)\n%s", what, timeout, end-lag, end, err, outs.String())
		}
		time.Sleep(200 * time.Millisecond) // the poll interval
	}
}

// e2eConsume reads every message on topics from the beginning with a fresh consumer
// group: as many as their end offsets say they hold (the topics are the test's own, so
// they start at offset 0), failing the test if that takes longer than timeout.
func e2eConsume(t *testing.T, brokers string, topics []string, timeout time.Duration) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, end, err := e2eLag(ctx, brokers, "", topics)
	if err != nil {
		t.Fatalf("reading the end offsets of %v: %v", topics, err)
	}
	c, err := kafka.NewConsumer(kafka.ConsumerOptions{Brokers: splitBrokers(brokers),
		GroupID: fmt.Sprintf("e2e-check-%d", time.Now().UnixNano()), Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var msgs []kafka.Message
	for int64(len(msgs)) < end {
		m, err := c.Fetch(ctx)
		if err != nil {
			t.Fatalf("consuming %v: %d of %d messages read: %v", topics, len(msgs), end, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// e2eDemoArgs runs the bundled payment service with the slow-storage incident on 4821.
func e2eDemoArgs(demo string, otlpPort, settlements int, ledger string, extra ...string) []string {
	return append([]string{demo, "--otlp", "127.0.0.1:" + strconv.Itoa(otlpPort),
		"--settlements", strconv.Itoa(settlements), "--first-settlement", "4815",
		"--incident", "slow-storage", "--incident-settlement", "4821", "--ledger", ledger}, extra...)
}

// TestKafkaEndToEnd records the demo service through Kafka into an engine and checks that
// the event log holds exactly the published events, joined to their spans.
func TestKafkaEndToEnd(t *testing.T) {
	needRoot(t)
	brokers := e2eBrokers(t)
	_, demo := e2eTools(t)
	begin := time.Now()
	prefix, group := e2ePrefix(t, brokers)
	data := t.TempDir()
	ledger := filepath.Join(t.TempDir(), "ledger")
	port := e2eFreePort(t)

	eng := e2eEngine(t, brokers, data, prefix, group, port)
	t.Logf("engine up after %v", time.Since(begin).Round(time.Millisecond))

	rec := e2eStart(t, "record", append([]string{agent(t), "record", "--kafka", brokers, "--topic-prefix", prefix, "--"},
		e2eDemoArgs(demo, port, 12, ledger)...)...)
	if err := rec.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("record: %v\n%s", err, rec.out.String())
	}
	out := rec.out.String()
	s := e2eRecordSummary(t, out)
	t.Logf("record done after %v: recorded=%d published=%d kafka written=%d", time.Since(begin).Round(time.Millisecond),
		s.recorded, s.published, s.written)
	if s.published == 0 || s.publishDropped != 0 || s.published != s.recorded {
		t.Fatalf("recorded %d, published %d, dropped %d: want all published:\n%s", s.recorded, s.published, s.publishDropped, out)
	}
	if s.kafkaDropped != 0 || s.discarded != 0 || s.written != s.enqueued {
		t.Fatalf("producer lost messages (enqueued %d, written %d, dropped %d, discarded %d):\n%s",
			s.enqueued, s.written, s.kafkaDropped, s.discarded, out)
	}

	e2eWaitCaughtUp(t, brokers, group, prefix, eng, 3*time.Minute)
	st := e2eStopEngine(t, eng)
	t.Logf("engine stopped after %v: %+v", time.Since(begin).Round(time.Millisecond), st)
	// Without write errors nothing was retried, so the engine read each message once.
	if st.written != s.published || st.events != s.published || st.messages < s.written || (s.writeErrors == 0 && st.messages != s.written) {
		t.Errorf("engine read %d messages with %d events and wrote %d; record published %d events in %d messages",
			st.messages, st.events, st.written, s.published, s.written)
	}
	if st.deadLettered != 0 {
		t.Errorf("engine dead-lettered %d messages of a healthy recording", st.deadLettered)
	}
	if st.spans == 0 {
		t.Errorf("engine received no spans from the demo over OTLP:\n%s", eng.out.String())
	}

	evs := e2eStored(t, data)
	e2eUniqueIDs(t, evs)
	if uint64(len(evs)) != s.published {
		t.Errorf("event log holds %d events; record published %d, engine wrote %d", len(evs), s.published, st.written)
	}

	// Settlement 4821 hit slow storage: its events carry its trace, joined by thread, and
	// include the writes to the ledger file.
	fi, err := os.Stat(ledger)
	if err != nil {
		t.Fatal(err)
	}
	ls := fi.Sys().(*syscall.Stat_t)
	var joined, ledgerWrites int
	traces := map[string]bool{}
	for _, e := range evs {
		if e["settlement.id"] != "4821" {
			continue
		}
		joined++
		tid, _ := e["trace_id"].(string)
		if tid == "" || e["join"] != "tid" {
			t.Errorf("event of settlement 4821 not joined by thread to a trace: %v", e)
			continue
		}
		traces[tid] = true
		if e["type"] == "write" && e["ino"] == float64(ls.Ino) && e["dev"] == float64(ls.Dev) {
			ledgerWrites++
		}
	}
	if joined == 0 || ledgerWrites == 0 {
		t.Errorf("settlement 4821: %d events, %d writes to the ledger (dev %d ino %d); want both > 0", joined, ledgerWrites, ls.Dev, ls.Ino)
	}
	if len(traces) != 1 {
		t.Errorf("events of settlement 4821 carry %d trace ids, want 1: %v", len(traces), traces)
	}
	t.Logf("%d events stored; settlement 4821: %d events, %d ledger writes; total %v",
		len(evs), joined, ledgerWrites, time.Since(begin).Round(time.Millisecond))
}

// TestKafkaEngineKillRestart kills the engine mid-stream and restarts it on the same group
// and event log: at-least-once delivery plus idempotent writes store exactly the recorded
// events.
func TestKafkaEngineKillRestart(t *testing.T) {
	needRoot(t)
	brokers := e2eBrokers(t)
	_, demo := e2eTools(t)
	begin := time.Now()
	prefix, group := e2ePrefix(t, brokers)
	data := t.TempDir()
	ledger := filepath.Join(t.TempDir(), "ledger")
	port := e2eFreePort(t)

	eng1 := e2eEngine(t, brokers, data, prefix, group, port)
	// The demo settles 10 times a second until record is stopped: the stream goes on past
	// the kill however long engine #1 takes to commit on a loaded machine.
	rec := e2eStart(t, "record", append([]string{agent(t), "record", "--kafka", brokers, "--topic-prefix", prefix, "--"},
		e2eDemoArgs(demo, port, 1_000_000, ledger, "--rate", "10")...)...)
	recStart := time.Now()

	// Kill engine #1 once it has stored and committed part of the stream (it commits only
	// what it has written), while the demo is still producing.
	topics := prefixed(prefix, event.KernelTopics...)
	committed, _ := e2eWaitOffsets(t, brokers, group, topics, "before engine #1 committed anything", 3*time.Minute,
		[]*e2eProc{eng1, rec}, func(c, _ int64) bool { return c > 0 })
	if err := eng1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eng1.wait(t, time.Minute)
	// The stream goes on after the kill: engine #2 has messages nobody committed.
	_, endAtKill := e2eWaitOffsets(t, brokers, group, topics, "reading the offsets after the kill", time.Minute,
		[]*e2eProc{rec}, func(_, _ int64) bool { return true })
	e2eWaitOffsets(t, brokers, group, topics, "publishing after the kill", 2*time.Minute, []*e2eProc{rec},
		func(_, end int64) bool { return end > endAtKill })
	t.Logf("engine #1 killed %v after record started, with %d messages committed; record went on publishing",
		time.Since(recStart).Round(time.Millisecond), committed)

	// Asked to stop, record stops the demo and flushes: that is no failure.
	if err := rec.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := rec.wait(t, 2*time.Minute); err != nil {
		t.Fatalf("record: %v\n%s", err, rec.out.String())
	}
	s := e2eRecordSummary(t, rec.out.String())
	if s.published == 0 || s.publishDropped != 0 || s.discarded != 0 || s.kafkaDropped != 0 || s.written != s.enqueued {
		t.Fatalf("record lost events on the way to Kafka:\n%s", rec.out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	lag, end, err := e2eLag(ctx, brokers, group, topics)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if lag == 0 {
		t.Fatalf("nothing left for engine #2: engine #1 had committed all %d messages when killed", end)
	}
	// What the killed engine left in the event log (no engine holds it now).
	before := len(e2eStored(t, data))
	t.Logf("record done after %v: published %d events in %d messages; %d messages uncommitted; %d events stored by engine #1",
		time.Since(begin).Round(time.Millisecond), s.published, s.written, lag, before)
	if before == 0 {
		t.Errorf("engine #1 stored nothing before it was killed: the kill tests no restart")
	}
	if uint64(before) >= s.published {
		t.Errorf("engine #1 stored %d of %d events although it was killed mid-stream", before, s.published)
	}

	// Engine #2 waits for the group to drop the killed member (session timeout 10 s).
	eng2 := e2eEngine(t, brokers, data, prefix, group, port)
	e2eWaitCaughtUp(t, brokers, group, prefix, eng2, 3*time.Minute)
	st := e2eStopEngine(t, eng2)
	t.Logf("engine #2 stopped after %v: %+v", time.Since(begin).Round(time.Millisecond), st)
	if st.messages < uint64(lag) {
		t.Errorf("engine #2 read %d messages, fewer than the %d left uncommitted", st.messages, lag)
	}
	// Engine #2 re-wrote what engine #1 had stored but not committed; the store keeps one.
	t.Logf("engine #2 wrote %d events, %d of them already stored by engine #1",
		st.written, int64(st.written)+int64(before)-int64(s.published))

	evs := e2eStored(t, data)
	e2eUniqueIDs(t, evs)
	if uint64(len(evs)) != s.published {
		t.Errorf("event log holds %d events, record published %d", len(evs), s.published)
	}
	t.Logf("%d events stored; total %v", len(evs), time.Since(begin).Round(time.Millisecond))
}

// e2ePrivateKafka runs scripts/kafka/kafka.sh with its own port and state, so that it can be
// stopped without disturbing the shared broker.
type e2ePrivateKafka struct {
	env     []string
	brokers string
}

func (k *e2ePrivateKafka) script(t *testing.T, cmd string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "../../scripts/kafka/kafka.sh", cmd)
	c.Env = k.env
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("kafka.sh %s (%s): %v\n%s", cmd, k.brokers, err, out)
	}
}

func e2eStartPrivateKafka(t *testing.T) *e2ePrivateKafka {
	t.Helper()
	port := e2eFreePortPair(t)
	k := &e2ePrivateKafka{
		brokers: "127.0.0.1:" + strconv.Itoa(port),
		env: append(os.Environ(), "KPROBE_KAFKA_PORT="+strconv.Itoa(port),
			"KPROBE_KAFKA_CONTROLLER_PORT="+strconv.Itoa(port+1), "KPROBE_STATE="+t.TempDir(),
			// A broker that restarts on a machine busy with the rest of the suite has been
			// seen to need more than the script's default 90 s.
			"KPROBE_KAFKA_HEAP=256m", "KPROBE_KAFKA_TIMEOUT=240"),
	}
	t.Cleanup(func() {
		c := exec.Command("../../scripts/kafka/kafka.sh", "stop")
		c.Env = k.env
		if out, err := c.CombinedOutput(); err != nil {
			t.Errorf("stopping the private Kafka: %v\n%s", err, out)
		}
	})
	k.script(t, "start")
	return k
}

// e2eLines returns the lines of out that contain every one of subs.
func e2eLines(out string, subs ...string) []string {
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			lines = append(lines, line)
		}
	}
	return lines
}

// TestKafkaOutage stops the broker while a recording flows through it into an engine, and
// starts it again. The recorder survives, buffers, and delivers every event it accepted.
// The engine keeps running, logs the outage once when it begins and once when it ends,
// resumes from its committed offsets and handles every message on the broker exactly once;
// the event log holds every published event once.
func TestKafkaOutage(t *testing.T) {
	needRoot(t)
	e2eBrokers(t) // the script and its jars are there when the shared broker is
	begin := time.Now()
	k := e2eStartPrivateKafka(t)
	t.Logf("private Kafka at %s up after %v", k.brokers, time.Since(begin).Round(time.Millisecond))
	prefix, group := e2ePrefix(t, "") // the private broker goes with its state
	data := t.TempDir()
	eng := e2eEngine(t, k.brokers, data, prefix, group, 0)

	// A shell writing about 50 times a second until told to stop.
	stop := filepath.Join(t.TempDir(), "stop")
	loop := fmt.Sprintf(`i=0; while [ $i -lt 20000 ] && [ ! -e %s ]; do echo x > /dev/null; i=$((i+1)); sleep 0.02; done`, stop)
	rec := e2eStart(t, "record", agent(t), "record", "--kafka", k.brokers, "--topic-prefix", prefix,
		"--log-level", "info", "--", "sh", "-c", loop)
	t.Cleanup(func() { os.WriteFile(stop, nil, 0o600) })
	topics := prefixed(prefix, event.KernelTopics...)
	offsets := func(what string, timeout time.Duration, cond func(committed, end int64) bool) (committed, end int64) {
		t.Helper()
		return e2eWaitOffsets(t, k.brokers, group, topics, what, timeout, []*e2eProc{eng, rec}, cond)
	}
	// Events must flow all the way into the event log before the broker goes.
	before, _ := offsets("before the outage", 3*time.Minute, func(c, _ int64) bool { return c > 0 })
	if warn := e2eLines(eng.out.String(), "level=WARN"); len(warn) > 0 {
		t.Errorf("the engine warned before anything went wrong:\n%s", strings.Join(warn, "\n"))
	}

	outage := time.Now()
	k.script(t, "stop")
	t.Logf("private Kafka stopped in %v with %d messages committed", time.Since(outage).Round(time.Millisecond), before)
	eng.waitOutput(t, "kafka unreachable", 2*time.Minute)
	restart := time.Now()
	k.script(t, "start")
	t.Logf("private Kafka back after %v (restart took %v)", time.Since(outage).Round(time.Millisecond),
		time.Since(restart).Round(time.Millisecond))
	// The producer must resume while the recording runs (its backoff is at most ~6 s), not
	// only when record flushes at exit; the engine must consume and commit again.
	_, endAtRestart := offsets("after the restart", 2*time.Minute, func(_, _ int64) bool { return true })
	offsets("publishing again", 2*time.Minute, func(_, end int64) bool { return end > endAtRestart })
	eng.waitOutput(t, "kafka reachable again; consuming resumed", 3*time.Minute)
	after, _ := offsets("consuming again", 3*time.Minute, func(c, _ int64) bool { return c > before })
	t.Logf("recording and engine resumed %v after the restart began; %d messages committed", time.Since(restart).Round(time.Millisecond), after)

	if err := os.WriteFile(stop, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rec.wait(t, 2*time.Minute); err != nil {
		t.Fatalf("record did not survive the outage: %v\n%s", err, rec.out.String())
	}
	out := rec.out.String()
	s := e2eRecordSummary(t, out)
	t.Logf("record done after %v: %+v", time.Since(begin).Round(time.Millisecond), s)
	for _, line := range e2eLines(out, "component=kafka-producer") {
		t.Logf("record: %s", line)
	}

	// Every event handed to the sink was published or counted as dropped; every message
	// the producer accepted was written or counted as discarded.
	if s.published+s.publishDropped != s.recorded {
		t.Errorf("recorded %d events but published %d + dropped %d", s.recorded, s.published, s.publishDropped)
	}
	if s.written+s.discarded != s.enqueued {
		t.Errorf("producer accepted %d messages but wrote %d + discarded %d: %d silently lost",
			s.enqueued, s.written, s.discarded, int64(s.enqueued)-int64(s.written+s.discarded))
	}
	if s.written == 0 || s.published < 200 {
		t.Fatalf("too little got through (%d events published, %d messages written):\n%s", s.published, s.written, out)
	}
	if s.writeErrors == 0 {
		t.Errorf("no write errors: the outage was not noticed by the producer:\n%s", out)
	}
	// The broker was back long before the end: nothing should have been given up.
	if s.discarded != 0 || s.publishDropped != 0 || s.kafkaDropped != 0 {
		t.Errorf("events lost although the broker came back (discarded %d messages, dropped %d+%d events):\n%s",
			s.discarded, s.publishDropped, s.kafkaDropped, out)
	}

	e2eWaitCaughtUp(t, k.brokers, group, prefix, eng, 3*time.Minute)
	st := e2eStopEngine(t, eng)
	engOut := eng.out.String()
	t.Logf("engine stopped after %v: %+v", time.Since(begin).Round(time.Millisecond), st)
	for _, line := range e2eLines(engOut, "component=kafka-") {
		t.Logf("engine: %s", line)
	}

	// What reached the broker: at least the messages acknowledged, and every published
	// event exactly once after removing duplicates (retries after a cut write may repeat).
	msgs := e2eConsume(t, k.brokers, topics, 2*time.Minute)
	ids := map[uint64]bool{}
	var onBroker uint64
	for _, m := range msgs {
		evs, err := event.UnmarshalBatch(m.Value)
		if err != nil {
			t.Fatalf("undecodable batch on %s: %v", m.Topic, err)
		}
		onBroker += uint64(len(evs))
		for i := range evs {
			ids[evs[i].ID] = true
		}
	}
	t.Logf("broker holds %d messages with %d events (%d distinct)", len(msgs), onBroker, len(ids))
	if uint64(len(msgs)) < s.written {
		t.Errorf("broker holds %d messages, the producer says it wrote %d", len(msgs), s.written)
	}
	if uint64(len(ids)) != s.published {
		t.Errorf("broker holds %d distinct events, record published %d", len(ids), s.published)
	}
	if uint64(len(msgs)) != s.written {
		t.Logf("note: %d messages duplicated by retries (at-least-once)", uint64(len(msgs))-s.written)
	}

	// The engine handled each message on the broker once: none lost in the outage, none
	// joined and written twice when the group started again from its last commit.
	if st.messages != uint64(len(msgs)) || st.events != onBroker {
		t.Errorf("engine handled %d messages with %d events; the broker holds %d with %d", st.messages, st.events,
			len(msgs), onBroker)
	}
	evs := e2eStored(t, data)
	e2eUniqueIDs(t, evs)
	if uint64(len(evs)) != s.published {
		t.Errorf("event log holds %d events, record published %d", len(evs), s.published)
	}
	down := e2eLines(engOut, "component=kafka-consumer", "kafka unreachable")
	back := e2eLines(engOut, "component=kafka-consumer", "kafka reachable again")
	if len(down) != 1 || len(back) != 1 {
		t.Errorf("the engine logged the outage %d times and its end %d times, want once each:\n%s", len(down), len(back), engOut)
	}
	if n := len(e2eLines(engOut, "i/o timeout")); n != 0 {
		t.Errorf("%d lines about i/o timeouts:\n%s", n, engOut)
	}
	t.Logf("%d events stored; total %v", len(evs), time.Since(begin).Round(time.Millisecond))
}

// TestKafkaPoisonMessage feeds the engine a malformed message among good ones: it
// dead-letters that one unchanged, stores the rest, and keeps going.
func TestKafkaPoisonMessage(t *testing.T) {
	brokers := e2eBrokers(t) // no eBPF here: root is not needed
	e2eTools(t)
	begin := time.Now()
	prefix, group := e2ePrefix(t, brokers)
	data := t.TempDir()
	eng := e2eEngine(t, brokers, data, prefix, group, 0)

	now := time.Now().UnixNano()
	var good []event.Event
	for i := range 3 {
		kt := uint64(1_000_000 + i)
		e := event.Event{TsNs: now + int64(i)*1000, KtimeNs: kt, Node: "e2e-node", PID: 4242, TID: 4243, CPU: 1,
			Comm: "poison-test", Type: event.TypeWrite, DurNs: 1500, Syscall: "write", FD: 3, Bytes: 512, Dev: 2049, Ino: 77}
		e.ID = event.NewID(e.Node, e.KtimeNs, e.TID, e.CPU, e.Type)
		good = append(good, e)
	}
	batch, err := event.MarshalBatch(good)
	if err != nil {
		t.Fatal(err)
	}
	garbage := []byte("\xff\xfenot a protobuf batch\x00\x01")

	prod, err := kafka.NewProducer(kafka.ProducerOptions{Brokers: splitBrokers(brokers)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- prod.Run(runCtx) }()
	topic := prefix + event.TopicSyscall
	if !prod.Publish(kafka.Message{Topic: topic, Key: []byte("poison"), Value: garbage}) ||
		!prod.Publish(kafka.Message{Topic: topic, Key: good[0].Key(), Value: batch}) {
		t.Fatal("producer refused a message")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err = prod.Close(ctx)
	cancel()
	stopRun()
	<-runDone
	if err != nil {
		t.Fatalf("flushing the producer: %v", err)
	}
	if ps := prod.Stats(); ps.Written != 2 {
		t.Fatalf("producer wrote %d messages, want 2: %+v", ps.Written, ps)
	}

	e2eWaitCaughtUp(t, brokers, group, prefix, eng, 3*time.Minute)
	st := e2eStopEngine(t, eng)
	t.Logf("engine stopped after %v: %+v", time.Since(begin).Round(time.Millisecond), st)
	if st.deadLettered != 1 || st.messages != 2 || st.events != uint64(len(good)) || st.written != uint64(len(good)) {
		t.Errorf("engine: %+v; want 2 messages, 1 dead-lettered, %d events written", st, len(good))
	}
	if !strings.Contains(eng.out.String(), "dead_lettered=1 ") {
		t.Errorf("engine summary does not say dead_lettered=1:\n%s", eng.out.String())
	}

	evs := e2eStored(t, data)
	ids := e2eUniqueIDs(t, evs)
	if len(evs) != len(good) {
		t.Errorf("event log holds %d events, want the %d good ones: %v", len(evs), len(good), evs)
	}
	for _, e := range good {
		if !ids[strconv.FormatUint(e.ID, 16)] {
			t.Errorf("good event %x not stored", e.ID)
		}
	}
	for _, e := range evs {
		if e["comm"] != "poison-test" || e["pid"] != 4242.0 || e["type"] != "write" || e["bytes"] != 512.0 {
			t.Errorf("stored event differs from what was sent: %v", e)
		}
	}

	dl := e2eConsume(t, brokers, []string{prefix + event.TopicDeadLetter}, 2*time.Minute)
	if len(dl) != 1 {
		t.Fatalf("dead-letter topic holds %d messages, want 1", len(dl))
	}
	if !bytes.Equal(dl[0].Value, garbage) {
		t.Errorf("dead-lettered value %q, want the garbage unchanged %q", dl[0].Value, garbage)
	}
	if !strings.HasPrefix(string(dl[0].Key), topic+": ") {
		t.Errorf("dead-letter key %q does not name the source topic %s", dl[0].Key, topic)
	}
	t.Logf("total %v", time.Since(begin).Round(time.Millisecond))
}
