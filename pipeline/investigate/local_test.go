package investigate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/pipeline/span"
)

const (
	t0 = int64(1_700_000_000_000_000_000)
	ms = int64(time.Millisecond)
)

// openLog opens an embedded event log (chDB allows one data directory per process: the
// test binary's tests share it, each in its own database).
func openLog(t *testing.T) *eventlog.Log {
	t.Helper()
	if _, err := os.Stat(eventlog.LibraryPath()); err != nil {
		t.Skipf("embedded ClickHouse engine not found at %s: run scripts/chdb/fetch.sh", eventlog.LibraryPath())
	}
	l, err := eventlog.OpenEmbedded(context.Background(), sharedDir(t), eventlog.Options{Database: dbName(t)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var (
	testDir string
	dbSeq   int
)

func sharedDir(t *testing.T) string {
	t.Helper()
	if testDir == "" {
		d, err := os.MkdirTemp("", "investigate-test-")
		if err != nil {
			t.Fatal(err)
		}
		testDir = d
	}
	return testDir
}

func dbName(t *testing.T) string {
	dbSeq++
	return fmt.Sprintf("inv%d", dbSeq)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if testDir != "" {
		os.RemoveAll(testDir)
	}
	os.Exit(code)
}

// incident is a small recorded incident: settlement 4821 slow (a failed ledger write),
// 4820 fast, 4822 whose process was recorded but joined nothing, and payment PAY-1.
func incident(t *testing.T) (*investigate.Local, []event.Event) {
	t.Helper()
	ctx := context.Background()
	l := openLog(t)
	spans := []span.Span{
		{TraceID: "t1", SpanID: "a", Name: "settlement.process", Service: "settle", Host: "node-a", PID: 4242, TID: 4243,
			StartNs: t0, EndNs: t0 + 300*ms, Status: span.StatusOK, Attrs: map[string]string{"settlement.id": "4821"}},
		{TraceID: "t1", SpanID: "b", ParentID: "a", Name: "ledger.write", Service: "settle", Host: "node-a", PID: 4242, TID: 4243,
			StartNs: t0 + 10*ms, EndNs: t0 + 290*ms, Status: span.StatusError,
			Attrs: map[string]string{"settlement.id": "4821", "payment.id": "PAY-1"}},
		{TraceID: "t0", SpanID: "c", Name: "settlement.process", Service: "settle", Host: "node-a", PID: 4242, TID: 4244,
			StartNs: t0 - 50*ms, EndNs: t0 - 42*ms, Status: span.StatusOK, Attrs: map[string]string{"settlement.id": "4820"}},
		{TraceID: "t2", SpanID: "d", Name: "settlement.process", Service: "settle", Host: "node-a", PID: 4242, TID: 4245,
			StartNs: t0 + 400*ms, EndNs: t0 + 405*ms, Attrs: map[string]string{"settlement.id": "4822"}},
	}
	if err := l.InsertSpans(ctx, spans); err != nil {
		t.Fatal(err)
	}
	joined := func(id uint64, dt int64, tid uint32, span string, attrs map[string]string, e event.Event) event.Event {
		e.ID, e.TsNs, e.Node, e.PID, e.TID, e.Comm = id, t0+dt, "node-a", 4242, tid, "settle-worker"
		e.TraceID, e.SpanID, e.SpanName, e.Service, e.Join, e.Attrs = "t1", span, "ledger.write", "settle", "tid", attrs
		return e
	}
	s4821 := map[string]string{"settlement.id": "4821", "payment.id": "PAY-1"}
	evs := []event.Event{
		joined(1, 20*ms, 4243, "b", s4821, event.Event{Type: event.TypeWrite, Syscall: "write", FD: 7, Bytes: 262144, Ino: 99, DurNs: uint64(211 * ms)}),
		joined(2, 240*ms, 4243, "b", s4821, event.Event{Type: event.TypeSchedSwitch, Preempted: true, NextComm: "batch", NextPID: 5150,
			RunqDelayNs: uint64(24 * ms), DurNs: uint64(24 * ms)}),
		joined(3, 260*ms, 4243, "b", s4821, event.Event{Type: event.TypeRead, Syscall: "read", FD: 7, Bytes: 10, Ino: 99, DurNs: uint64(2 * ms)}),
		joined(4, 270*ms, 4243, "b", s4821, event.Event{Type: event.TypeTCPSend, Bytes: 64, DurNs: uint64(2 * ms),
			SAddr: netip.MustParseAddr("10.0.0.1"), SPort: 40000, DAddr: netip.MustParseAddr("10.0.0.9"), DPort: 5432}),
		// Not joined: the same process, before everything.
		{ID: 5, TsNs: t0 - 100*ms, Node: "node-a", PID: 4242, TID: 4246, Comm: "settle-gc", Type: event.TypeRead, Syscall: "read", FD: 3, Bytes: 1},
		// Not joined, while 4822 ran (another thread).
		{ID: 7, TsNs: t0 + 402*ms, Node: "node-a", PID: 4242, TID: 4247, Comm: "settle-io", Type: event.TypeRead, Syscall: "read", FD: 3, Bytes: 1},
		// Another process.
		{ID: 6, TsNs: t0 + 5*ms, Node: "node-a", PID: 5150, TID: 5150, Comm: "batch", Type: event.TypeWrite, Syscall: "write", FD: 1, Bytes: 8},
	}
	if err := l.Insert(ctx, evs); err != nil {
		t.Fatal(err)
	}
	local, err := investigate.NewLocal(investigate.Options{Events: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { local.Close() })
	return local, evs
}

func TestLocalSubjects(t *testing.T) {
	svc, _ := incident(t)
	ctx := context.Background()
	s4821 := investigate.Subject{Kind: "settlement", ID: "4821", StartNs: t0, DurationNs: 300 * ms, Status: "error", TraceID: "t1",
		Service: "settle", Node: "node-a", PID: 4242, Comm: "settle-worker", Spans: 2, Events: 4}
	s4820 := investigate.Subject{Kind: "settlement", ID: "4820", StartNs: t0 - 50*ms, DurationNs: 8 * ms, Status: "ok", TraceID: "t0",
		Service: "settle", Node: "node-a", PID: 4242, Spans: 1}
	s4822 := investigate.Subject{Kind: "settlement", ID: "4822", StartNs: t0 + 400*ms, DurationNs: 5 * ms, TraceID: "t2",
		Service: "settle", Node: "node-a", PID: 4242, Spans: 1}
	pay1 := investigate.Subject{Kind: "payment", ID: "PAY-1", StartNs: t0 + 10*ms, DurationNs: 280 * ms, Status: "error", TraceID: "t1",
		Service: "settle", Node: "node-a", PID: 4242, Comm: "settle-worker", Spans: 1, Events: 4}
	for _, tc := range []struct {
		name string
		q    investigate.SubjectQuery
		want []investigate.Subject
	}{
		{"settlements by default, slowest first", investigate.SubjectQuery{}, []investigate.Subject{s4821, s4820, s4822}},
		{"top 1", investigate.SubjectQuery{Limit: 1}, []investigate.Subject{s4821}},
		{"failed", investigate.SubjectQuery{Kind: "settlement", FailedOnly: true}, []investigate.Subject{s4821}},
		{"from", investigate.SubjectQuery{From: t0}, []investigate.Subject{s4821, s4822}},
		{"window", investigate.SubjectQuery{From: t0 - time.Second.Nanoseconds(), To: t0}, []investigate.Subject{s4820}},
		{"payments", investigate.SubjectQuery{Kind: "payment"}, []investigate.Subject{pay1}},
		{"none of a kind", investigate.SubjectQuery{Kind: "order_book_op"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := svc.Subjects(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Subjects(%+v) (-want +got):\n%s", tc.q, diff)
			}
		})
	}

	// Uncounted: the same list, its events not counted (0 and not counted differ).
	uncounted := []investigate.Subject{s4821, s4820, s4822}
	for i := range uncounted {
		uncounted[i].Events, uncounted[i].Comm = investigate.EventsUncounted, ""
	}
	list, err := svc.Subjects(ctx, investigate.SubjectQuery{Uncounted: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(uncounted, list); diff != "" {
		t.Errorf("Subjects, uncounted (-want +got):\n%s", diff)
	}

	got, err := svc.Subject(ctx, investigate.Ref{Kind: "settlement", ID: "4821"})
	if err != nil || got != s4821 {
		t.Errorf("Subject(4821) = %+v, %v", got, err)
	}
	if _, err := svc.Subject(ctx, investigate.Ref{Kind: "settlement", ID: "9999"}); !errors.Is(err, investigate.ErrNotFound) {
		t.Errorf("Subject(9999): err = %v, want ErrNotFound", err)
	}
	for _, q := range []investigate.SubjectQuery{{Kind: "settlment"}, {From: t0, To: t0 - 1}} {
		if _, err := svc.Subjects(ctx, q); !errors.Is(err, investigate.ErrInvalid) {
			t.Errorf("Subjects(%+v): err = %v, want ErrInvalid", q, err)
		}
	}
}

func ids(evs []event.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func TestLocalEvents(t *testing.T) {
	svc, _ := incident(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		q    investigate.EventQuery
		want []uint64
	}{
		{"settlement", investigate.EventQuery{Ref: investigate.Ref{Kind: "settlement", ID: "4821"}}, []uint64{1, 2, 3, 4}},
		{"payment", investigate.EventQuery{Ref: investigate.Ref{Kind: "payment", ID: "PAY-1"}, Limit: 2}, []uint64{1, 2}},
		{"trace", investigate.EventQuery{Ref: investigate.Ref{TraceID: "t1"}}, []uint64{1, 2, 3, 4}},
		{"span", investigate.EventQuery{SpanID: "b", Types: []event.Type{event.TypeRead, event.TypeWrite}}, []uint64{1, 3}},
		{"process", investigate.EventQuery{Node: "node-a", PID: 4242}, []uint64{5, 1, 2, 3, 4, 7}},
		{"thread and time", investigate.EventQuery{PID: 4242, TID: 4243, From: t0 + 240*ms, To: t0 + 270*ms}, []uint64{2, 3}},
		{"evidence", investigate.EventQuery{IDs: []uint64{6, 2}}, []uint64{6, 2}},
		{"unknown settlement", investigate.EventQuery{Ref: investigate.Ref{Kind: "settlement", ID: "1"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := svc.Events(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, ids(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Events(%+v) (-want +got):\n%s", tc.q, diff)
			}
		})
	}
	for _, q := range []investigate.EventQuery{
		{Ref: investigate.Ref{Kind: "settlement"}}, {Ref: investigate.Ref{ID: "4821"}},
		{Ref: investigate.Ref{Kind: "nope", ID: "1"}}, {From: 5, To: 4}, {Limit: -1},
	} {
		if _, err := svc.Events(ctx, q); !errors.Is(err, investigate.ErrInvalid) {
			t.Errorf("Events(%+v): err = %v, want ErrInvalid", q, err)
		}
	}
}

func TestLocalSyscallLog(t *testing.T) {
	svc, _ := incident(t)
	ctx := context.Background()
	got, err := svc.SyscallLog(ctx, investigate.SyscallLogQuery{Node: "node-a", PID: 4242})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{5, 1, 3, 7}, ids(got)); diff != "" {
		t.Errorf("SyscallLog (-want +got):\n%s", diff)
	}
	got, err = svc.SyscallLog(ctx, investigate.SyscallLogQuery{PID: 4242, From: t0, To: t0 + 400*ms})
	if diff := cmp.Diff([]uint64{1, 3}, ids(got)); err != nil || diff != "" {
		t.Errorf("SyscallLog of a window (-want +got):\n%s%v", diff, err)
	}
	if _, err := svc.SyscallLog(ctx, investigate.SyscallLogQuery{Node: "node-a"}); !errors.Is(err, investigate.ErrInvalid) {
		t.Errorf("SyscallLog without a pid: err = %v, want ErrInvalid", err)
	}
}

// Without a graph store, a chain is computed from the event log on demand: the failed
// 211ms ledger write and the 24ms preemption by the batch job, the rest unexplained.
func TestLocalChainOnDemand(t *testing.T) {
	svc, _ := incident(t)
	ch, err := svc.Chain(context.Background(), investigate.Ref{Kind: "settlement", ID: "4821"})
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Kind     string
		Ns       int64
		Resource string
	}
	var got []row
	for _, c := range ch.Causes {
		got = append(got, row{c.Kind, c.ExplainedNs, c.Resource})
	}
	want := []row{{investigate.CauseStorage, 211 * ms, "file dev 0:0 inode 99"}, {investigate.CauseUnexplained, 65 * ms, ""},
		{investigate.CauseCPUContention, 24 * ms, "cpu 0"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("causes (-want +got):\n%s", diff)
	}
	if ch.Subject.DurationNs != 300*ms || ch.Subject.Status != "error" || ch.Subject.Spans != 2 {
		t.Errorf("subject %+v", ch.Subject)
	}
	if _, err := svc.Chain(context.Background(), investigate.Ref{Kind: "settlement", ID: "9999"}); !errors.Is(err, investigate.ErrNotFound) {
		t.Errorf("unknown settlement: err = %v, want ErrNotFound", err)
	}
}

func TestLocalClose(t *testing.T) {
	svc, _ := incident(t)
	if _, err := svc.Subjects(context.Background(), investigate.SubjectQuery{}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Subjects(context.Background(), investigate.SubjectQuery{}); err == nil {
		t.Error("Subjects after Close succeeded: the event log was not closed")
	}
}

func TestNewLocalOptions(t *testing.T) {
	if _, err := investigate.NewLocal(investigate.Options{}); err == nil {
		t.Error("NewLocal without an event log succeeded")
	}
	l := openLog(t)
	defer l.Close()
	if _, err := investigate.NewLocal(investigate.Options{Events: l, Kinds: []investigate.Kind{{Name: "netting_run"}}}); err == nil {
		t.Error("a kind without an attribute was accepted")
	}
	svc, err := investigate.NewLocal(investigate.Options{Events: l, Kinds: []investigate.Kind{{Name: "netting_run", Attr: "netting.run"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.InsertSpans(context.Background(), []span.Span{{TraceID: "t", SpanID: "s", StartNs: t0, EndNs: t0 + ms,
		Attrs: map[string]string{"netting.run": "N-7"}}}); err != nil {
		t.Fatal(err)
	}
	got, err := svc.Subjects(context.Background(), investigate.SubjectQuery{Kind: "netting_run"})
	if err != nil || len(got) != 1 || got[0].ID != "N-7" {
		t.Errorf("a firm's own kind: %+v, %v", got, err)
	}
}

// TestSummary: the aggregation and the wording of `kprobe-tui settlements`.
func TestSummary(t *testing.T) {
	svc, _ := incident(t)
	ctx := context.Background()
	subjects, err := svc.Subjects(ctx, investigate.SubjectQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for i, s := range subjects {
		k, err := investigate.Summarize(ctx, svc, s, 3)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			wantTypes := []investigate.TypeTime{
				{Type: event.TypeRead, Name: "read", Events: 1, DurationNs: 2 * ms},
				{Type: event.TypeWrite, Name: "write", Events: 1, DurationNs: 211 * ms},
				{Type: event.TypeTCPSend, Name: "tcp_send", Events: 1, DurationNs: 2 * ms},
				{Type: event.TypeSchedSwitch, Name: "sched_switch", Events: 1, DurationNs: 24 * ms},
			}
			if diff := cmp.Diff(wantTypes, k.ByType); diff != "" {
				t.Errorf("by type (-want +got):\n%s", diff)
			}
			// 3 and 4 both took 2 ms: time order decides.
			if diff := cmp.Diff([]uint64{1, 2, 3}, ids(k.Slowest)); diff != "" {
				t.Errorf("slowest (-want +got):\n%s", diff)
			}
		}
		investigate.WriteSummary(&out, i+1, k)
	}
	want := `#1 settlement 4821  300ms  (settle pid 4242 on node-a, trace t1, 2 spans)
    kernel: read 1 (2ms), write 1 (211ms), tcp_send 1 (2ms), sched_switch 1 (24ms)
    write             211ms  write(fd 7) 262144 bytes, inode 99  [ledger.write]
    sched_switch       24ms  preempted by batch (pid 5150), run-queue delay 24ms  [ledger.write]
    read                2ms  read(fd 7) 10 bytes, inode 99  [ledger.write]
#2 settlement 4820  8ms  (settle pid 4242 on node-a, trace t0, 1 span)
    no kernel events joined: pid 4242 was recorded but did nothing the recorder hooks while it ran
#3 settlement 4822  5ms  (settle pid 4242 on node-a, trace t2, 1 span)
    no kernel events joined, though pid 4242 had 1 while it ran (1 unjoined): unknown thread, or its spans came later than --lateness (see the agent's 'why:' lines)
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("settlements text (-want +got):\n%s", diff)
	}
}
