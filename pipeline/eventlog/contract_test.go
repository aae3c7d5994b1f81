package eventlog

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kprobe/kprobe/pipeline/event"
)

// openFunc opens a fresh, empty Log with opts. It fills opts.Database with a name of its
// own when empty, and closes the log when the test ends.
type openFunc func(t *testing.T, opts Options) *Log

var dbSeq atomic.Int64

// testDatabase is a database name unique within the test process.
func testDatabase() string { return fmt.Sprintf("t%d", dbSeq.Add(1)) }

var cmpEvents = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

// runContract is the behaviour the Log must have on every engine.
func runContract(t *testing.T, open openFunc) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, open) })
	t.Run("Queries", func(t *testing.T) { testQueries(t, open) })
	t.Run("Idempotent", func(t *testing.T) { testIdempotent(t, open) })
	t.Run("TimeWindow", func(t *testing.T) { testTimeWindow(t, open) })
	t.Run("Retention", func(t *testing.T) { testRetention(t, open) })
	t.Run("HostileStrings", func(t *testing.T) { testHostile(t, open) })
	t.Run("Empty", func(t *testing.T) { testEmpty(t, open) })
	t.Run("SpanGroups", func(t *testing.T) { testSpanGroups(t, open) })
	t.Run("EventTotals", func(t *testing.T) { testEventTotals(t, open) })
	t.Run("Spans", func(t *testing.T) { testSpans(t, open) })
}

const t0 = int64(1_700_000_000_000_000_000) // 2023-11-14T22:13:20Z

// fullEvents sets every field of event.Event, with the awkward values.
func fullEvents() []event.Event {
	return []event.Event{
		{
			ID: 1, TsNs: t0, KtimeNs: 123456789, Node: "node-a", PID: 4242, TID: 4243, CPU: 3,
			Comm: "settle-wörker→", CgroupID: 1 << 40, Type: event.TypeRead, DurNs: 1500,
			Syscall: "pread64", FD: 7, Bytes: 11, Errno: 0, Dev: 0xfd00, Ino: 918273,
			Payload: []byte("GET /\x00\xff\xfe\r\n\x01x"),
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7",
			Service: "settlement", SpanName: "POST /settle", Join: "tid",
			Attrs: map[string]string{"settlement.id": "4821", "payment.id": "PAY-98721", "": "empty key", "ünï": "cödé"},
		},
		{
			ID: 2, TsNs: t0 + 1, KtimeNs: 123456790, Node: "node-a", PID: 4242, TID: 4244, CPU: 0,
			Comm: "java", Type: event.TypeWrite, DurNs: 99, Syscall: "writev", FD: -1, Errno: 32,
			Bytes: -1, Join: "pid",
		},
		{
			ID: 3, TsNs: t0 + 2, Node: "node-a", PID: 4242, TID: 4243, Type: event.TypeTCPSend, DurNs: 7,
			SAddr: netip.MustParseAddr("10.0.0.1"), DAddr: netip.MustParseAddr("192.168.1.200"),
			SPort: 43210, DPort: 5432, Bytes: 1 << 20,
		},
		{
			ID: 4, TsNs: t0 + 3, Node: "node-a", PID: 4242, TID: 4243, Type: event.TypeTCPRecv,
			SAddr: netip.MustParseAddr("2001:db8::1"), DAddr: netip.MustParseAddr("::ffff:10.1.2.3"),
			SPort: 65535, DPort: 1, Bytes: 5, Payload: []byte{0, 0, 0},
		},
		{
			ID: 5, TsNs: t0 + 4, Node: "node-a", PID: 4242, TID: 4243, Type: event.TypeTCPRecv,
			SAddr: netip.MustParseAddr("::"), DAddr: netip.MustParseAddr("::1"),
		},
		{
			ID: 6, TsNs: t0 + 5, Node: "node-a", PID: 4242, TID: 4243, CPU: 1, Type: event.TypeSchedSwitch,
			DurNs: 2_000_000, Preempted: true, NextPID: 1, NextTID: 2, NextComm: "kworker/1:0",
			WakerPID: 3, WakerTID: 4, RunqDelayNs: 12345,
		},
		{
			ID: 7, TsNs: t0 + 6, Node: "node-a", PID: 4242, TID: 4243, Type: event.TypePageFault,
			Addr: 0x7fffdeadbeef, IP: 0xffffffff81000000, ErrorCode: 6, KernelFault: true,
		},
		{
			ID: 8, TsNs: t0 + 6, KtimeNs: 123456800, Node: "node-a", PID: 4242, TID: 4245, Type: event.TypeSyscall,
			DurNs: 1_500, Syscall: "recvfrom", FD: 7, Bytes: 70000, Payload: []byte("amount=120\x00\xff"),
			Args: []int64{7, 0x7ffd00001000, 1 << 20, 0, 0, -1}, Path: "/etc/ledger/rates.txt", Truncated: 4464,
		},
		{
			ID: ^uint64(0), TsNs: t0 + 7, KtimeNs: ^uint64(0), Node: "node-a", PID: ^uint32(0), TID: ^uint32(0),
			CPU: ^uint32(0), CgroupID: ^uint64(0), Type: event.Type(200), DurNs: ^uint64(0),
			FD: -2147483648, Bytes: -9223372036854775808, Errno: 2147483647, Dev: ^uint64(0), Ino: ^uint64(0),
		},
	}
}

func mustInsert(t *testing.T, s *Log, evs []event.Event) {
	t.Helper()
	if err := s.Insert(context.Background(), evs); err != nil {
		t.Fatalf("Insert: %v", err)
	}
}

func mustEvents(t *testing.T, s *Log, q Query) []event.Event {
	t.Helper()
	got, err := s.Events(context.Background(), q)
	if err != nil {
		t.Fatalf("Events(%+v): %v", q, err)
	}
	return got
}

func mustCount(t *testing.T, s *Log, q Query) uint64 {
	t.Helper()
	n, err := s.Count(context.Background(), q)
	if err != nil {
		t.Fatalf("Count(%+v): %v", q, err)
	}
	return n
}

func testRoundTrip(t *testing.T, open openFunc) {
	s := open(t, Options{})
	want := fullEvents()
	mustInsert(t, s, want)
	got := mustEvents(t, s, Query{})
	if diff := cmp.Diff(want, got, cmpEvents); diff != "" {
		t.Errorf("Events round trip (-want +got):\n%s", diff)
	}
	// EquateEmpty hides nil-vs-empty; the events above also pin that absent stays absent.
	for i := range got {
		if (want[i].Payload == nil) != (got[i].Payload == nil) || (want[i].Attrs == nil) != (got[i].Attrs == nil) {
			t.Errorf("event %d: payload/attrs presence changed: want %v/%v, got %v/%v",
				want[i].ID, want[i].Payload != nil, want[i].Attrs != nil, got[i].Payload != nil, got[i].Attrs != nil)
		}
	}
}

// queryEvents is a small log with known answers: ids are chosen so the expected lists
// below can be read off by hand.
func queryEvents() []event.Event {
	ev := func(id uint64, node string, pid, tid uint32, dt int64, typ event.Type, dur uint64, trace, span string, attrs map[string]string) event.Event {
		return event.Event{ID: id, Node: node, PID: pid, TID: tid, TsNs: t0 + dt, Type: typ, DurNs: dur,
			TraceID: trace, SpanID: span, Attrs: attrs, Payload: []byte(fmt.Sprintf("payload-%d", id))}
	}
	s4821 := map[string]string{"settlement.id": "4821"}
	return []event.Event{
		ev(1, "n1", 100, 101, 0, event.TypeRead, 50, "t1", "s1", s4821),
		ev(2, "n1", 100, 102, 10, event.TypeWrite, 70, "t1", "s2", map[string]string{"settlement.id": "4821", "payment.id": "PAY-1"}),
		ev(3, "n1", 100, 101, 20, event.TypeTCPSend, 900, "t2", "s3", map[string]string{"settlement.id": "4822"}),
		ev(4, "n1", 100, 101, 30, event.TypeSchedSwitch, 30, "", "", nil),
		ev(5, "n1", 200, 201, 10, event.TypeRead, 500, "t3", "s4", nil),
		ev(6, "n2", 100, 101, 15, event.TypeRead, 20, "", "", nil),
		ev(7, "n1", 100, 101, 40, event.TypePageFault, 10, "", "", nil),
		ev(8, "n1", 100, 102, 50, event.TypeRead, 1000, "t1", "s2", s4821),
		ev(9, "n2", 300, 301, 60, event.TypeTCPRecv, 5, "", "", nil),
		ev(10, "n1", 100, 101, 1000, event.TypeWrite, 3000, "", "", nil),
	}
}

func pick(evs []event.Event, ids ...uint64) []event.Event {
	var out []event.Event
	for _, id := range ids {
		i := slices.IndexFunc(evs, func(e event.Event) bool { return e.ID == id })
		out = append(out, evs[i])
	}
	return out
}

func testQueries(t *testing.T, open openFunc) {
	ctx := context.Background()
	s := open(t, Options{})
	all := queryEvents()
	mustInsert(t, s, all)

	rw := []event.Type{event.TypeRead, event.TypeWrite}
	for _, tc := range []struct {
		name string
		q    Query
		want []uint64
	}{
		{"all", Query{}, []uint64{1, 2, 5, 6, 3, 4, 7, 8, 9, 10}},
		{"node+pid", Query{Node: "n1", PID: 100}, []uint64{1, 2, 3, 4, 7, 8, 10}},
		{"pid any node", Query{PID: 100}, []uint64{1, 2, 6, 3, 4, 7, 8, 10}},
		{"tid", Query{Node: "n1", PID: 100, TID: 102}, []uint64{2, 8}},
		{"window", Query{Node: "n1", PID: 100, From: t0 + 10, To: t0 + 40}, []uint64{2, 3, 4}},
		{"from only", Query{Node: "n1", PID: 100, From: t0 + 40}, []uint64{7, 8, 10}},
		{"to only", Query{To: t0 + 10}, []uint64{1}},
		{"trace", Query{TraceID: "t1"}, []uint64{1, 2, 8}},
		{"span", Query{SpanID: "s2"}, []uint64{2, 8}},
		{"settlement", Query{AttrKey: "settlement.id", AttrValue: "4821"}, []uint64{1, 2, 8}},
		{"attr key only", Query{AttrKey: "payment.id"}, []uint64{2}},
		{"attr no match", Query{AttrKey: "settlement.id", AttrValue: "482"}, nil},
		{"types", Query{Types: []event.Type{event.TypeRead}}, []uint64{1, 5, 6, 8}},
		{"types+process", Query{Node: "n1", PID: 100, Types: rw}, []uint64{1, 2, 8, 10}},
		{"limit", Query{PID: 100, Limit: 3}, []uint64{1, 2, 6}},
		{"combined", Query{Node: "n1", AttrKey: "settlement.id", AttrValue: "4821", Types: []event.Type{event.TypeRead}}, []uint64{1, 8}},
		{"ids", Query{IDs: []uint64{9, 3, 42}}, []uint64{3, 9}},
		{"ids+process", Query{PID: 100, IDs: []uint64{1, 5, 6}}, []uint64{1, 6}},
		{"no such node", Query{Node: "n3"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := pick(all, tc.want...)
			if diff := cmp.Diff(want, mustEvents(t, s, tc.q), cmpEvents); diff != "" {
				t.Errorf("Events(%+v) (-want +got):\n%s", tc.q, diff)
			}
			wantN := uint64(len(tc.want))
			if tc.q.Limit > 0 {
				wantN = 8 // Count ignores Limit: all of "pid any node"
			}
			if got := mustCount(t, s, tc.q); got != wantN {
				t.Errorf("Count(%+v) = %d, want %d", tc.q, got, wantN)
			}
		})
	}

	// The flight recorder's events are part of the syscall log, arguments and all.
	flight := event.Event{ID: 50, Node: "n9", PID: 500, TID: 501, TsNs: t0 + 5, Type: event.TypeSyscall,
		Syscall: "openat", FD: -100, Bytes: 3, Args: []int64{-100, 140000000, 524288}, Path: "/srv/in.txt"}
	mustInsert(t, s, []event.Event{flight})
	if got, err := s.SyscallLog(ctx, "n9", 500, 0, 0); err != nil || !cmp.Equal([]event.Event{flight}, got, cmpEvents) {
		t.Errorf("SyscallLog of a flight-recorded process = %+v, %v; want %+v", got, err, flight)
	}

	for _, tc := range []struct {
		name     string
		node     string
		pid      uint32
		from, to int64
		want     []uint64
	}{
		{"process", "n1", 100, 0, 0, []uint64{1, 2, 8, 10}},
		{"window", "n1", 100, t0 + 10, t0 + 1000, []uint64{2, 8}},
		{"any node", "", 100, 0, 0, []uint64{1, 2, 6, 8, 10}},
	} {
		t.Run("SyscallLog/"+tc.name, func(t *testing.T) {
			got, err := s.SyscallLog(ctx, tc.node, tc.pid, tc.from, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(pick(all, tc.want...), got, cmpEvents); diff != "" {
				t.Errorf("SyscallLog (-want +got):\n%s", diff)
			}
		})
	}

	for _, tc := range []struct {
		name string
		q    Query
		want []uint64
	}{
		{"all time", Query{Limit: 3}, []uint64{10, 8, 3}},
		{"window", Query{From: t0, To: t0 + 1000, Limit: 2}, []uint64{8, 3}},
		{"more than there are", Query{From: t0 + 50, Limit: 10}, []uint64{10, 8, 9}},
		{"no limit", Query{PID: 200}, []uint64{5}},
		{"by attribute", Query{AttrKey: "settlement.id", AttrValue: "4821"}, []uint64{8, 2, 1}},
		{"types", Query{Types: []event.Type{event.TypeRead}, Limit: 2}, []uint64{8, 5}},
	} {
		t.Run("Slowest/"+tc.name, func(t *testing.T) {
			tc.q.Order = OrderSlowest
			if diff := cmp.Diff(pick(all, tc.want...), mustEvents(t, s, tc.q), cmpEvents); diff != "" {
				t.Errorf("Events(%+v) (-want +got):\n%s", tc.q, diff)
			}
		})
	}
}

func testIdempotent(t *testing.T, open openFunc) {
	s := open(t, Options{})
	all := queryEvents()
	mustInsert(t, s, all)
	// A restarted recorder re-sends what it had in flight: the whole batch, a part of it,
	// and a batch mixing old and new events.
	mustInsert(t, s, all)
	mustInsert(t, s, all[2:5])
	extra := all[9]
	extra.ID, extra.TsNs = 11, t0+2000
	mustInsert(t, s, []event.Event{all[0], extra})

	want := append(pick(all, 1, 2, 5, 6, 3, 4, 7, 8, 9, 10), extra)
	if diff := cmp.Diff(want, mustEvents(t, s, Query{}), cmpEvents); diff != "" {
		t.Errorf("Events after re-inserts (-want +got):\n%s", diff)
	}
	for _, q := range []Query{{}, {Node: "n1", PID: 100}, {AttrKey: "settlement.id", AttrValue: "4821"}} {
		want := uint64(len(mustEvents(t, s, q)))
		if got := mustCount(t, s, q); got != want {
			t.Errorf("Count(%+v) = %d, want %d", q, got, want)
		}
	}
	if got := mustCount(t, s, Query{}); got != 11 {
		t.Errorf("Count = %d, want 11", got)
	}
	// The totals by value read without FINAL: each event is counted once all the same
	// (event 1 of settlement 4821 was inserted three times, event 3 of 4822 twice).
	totals, err := s.EventTotalsByValue(context.Background(), "settlement.id", []string{"4821", "4822"})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(totals, func(a, b ValueTotal) int { return strings.Compare(a.Value, b.Value) })
	wantTotals := []ValueTotal{{Value: "4821", Events: 3, FirstNs: t0}, {Value: "4822", Events: 1, FirstNs: t0 + 20}}
	if diff := cmp.Diff(wantTotals, totals); diff != "" {
		t.Errorf("EventTotalsByValue after re-inserts (-want +got):\n%s", diff)
	}
	slow := mustEvents(t, s, Query{Order: OrderSlowest, Limit: 2})
	if diff := cmp.Diff([]uint64{10, 11}, ids(slow)); diff != "" {
		t.Errorf("Slowest after re-inserts (-want +got):\n%s", diff)
	}
}

func ids(evs []event.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func testTimeWindow(t *testing.T, open openFunc) {
	s := open(t, Options{})
	from, to := t0+1_000_000_000, t0+2_000_000_000
	var evs []event.Event
	for i, ts := range []int64{from - 1, from, from + 1, to - 1, to, to + 1} {
		evs = append(evs, event.Event{ID: uint64(i + 1), TsNs: ts, Node: "n", PID: 1, Type: event.TypeRead})
	}
	mustInsert(t, s, evs)
	for _, tc := range []struct {
		name string
		q    Query
		want []uint64
	}{
		{"closed", Query{From: from, To: to}, []uint64{2, 3, 4}},
		{"open end", Query{From: from}, []uint64{2, 3, 4, 5, 6}},
		{"open start", Query{To: to}, []uint64{1, 2, 3, 4}},
		{"one ns", Query{From: from, To: from + 1}, []uint64{2}},
		{"empty", Query{From: from, To: from}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ids(mustEvents(t, s, tc.q)), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Events(%+v) ids (-want +got):\n%s", tc.q, diff)
			}
			if diff := cmp.Diff(pick(evs, tc.want...), mustEvents(t, s, Query{Node: "n", PID: 1, From: tc.q.From, To: tc.q.To}), cmpEvents); diff != "" {
				t.Errorf("with process (-want +got):\n%s", diff)
			}
			got, err := s.SyscallLog(context.Background(), "n", 1, tc.q.From, tc.q.To)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, ids(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("SyscallLog ids (-want +got):\n%s", diff)
			}
		})
	}
}

func testRetention(t *testing.T, open openFunc) {
	ctx := context.Background()
	ddl := func(s *Log) string {
		t.Helper()
		d, err := s.tableDDL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	db := testDatabase()
	steps := []struct {
		days int
		want string // "" means no TTL
	}{
		{7, "TTL toDateTime(intDiv(ts_ns, 1000000000), 'UTC') + toIntervalDay(7)"},
		{7, "TTL toDateTime(intDiv(ts_ns, 1000000000), 'UTC') + toIntervalDay(7)"},
		{30, "TTL toDateTime(intDiv(ts_ns, 1000000000), 'UTC') + toIntervalDay(30)"},
		{0, ""},
		{0, ""},
		{1, "TTL toDateTime(intDiv(ts_ns, 1000000000), 'UTC') + toIntervalDay(1)"},
	}
	for i, st := range steps {
		s := open(t, Options{Database: db, RetentionDays: st.days})
		d := ddl(s)
		switch {
		case st.want == "" && strings.Contains(d, "TTL"):
			t.Errorf("step %d (%d days): DDL has a TTL:\n%s", i, st.days, d)
		case st.want != "" && !strings.Contains(d, st.want):
			t.Errorf("step %d (%d days): DDL lacks %q:\n%s", i, st.days, st.want, d)
		}
		for _, want := range []string{"ReplacingMergeTree", "ORDER BY (node, pid, ts_ns, id)", "idx_trace_id", "idx_settlement", widePartSetting} {
			if !strings.Contains(d, want) {
				t.Errorf("step %d: DDL lacks %q:\n%s", i, want, d)
			}
		}
		s.Close()
	}
}

// hostile are strings that break naively built SQL or parameter encodings.
var hostile = []string{
	`'`, `''`, `\`, `\'`, `\\'`, `'; DROP TABLE kernel_events; --`, `" OR 1=1 --`, "`x`",
	"{node:String}", "{{", "%s%d", "a\x00b", "\x00", "\t", "\n", "\r\n", "\\t", "\\0", `\\N`, `\N`,
	"NULL", "é→💥", "\xff\xfe", strings.Repeat("x'", 5000),
}

func testHostile(t *testing.T, open openFunc) {
	s := open(t, Options{})
	var evs []event.Event
	for i, h := range hostile {
		evs = append(evs, event.Event{
			ID: uint64(i + 1), TsNs: t0 + int64(i), Node: h, PID: 1, Comm: h, Type: event.TypeRead,
			TraceID: h, SpanID: h, Attrs: map[string]string{h: h, "settlement.id": h},
		})
	}
	mustInsert(t, s, evs)
	for i, h := range hostile {
		want := evs[i : i+1]
		for _, q := range []Query{
			{Node: h}, {TraceID: h}, {SpanID: h}, {AttrKey: "settlement.id", AttrValue: h}, {AttrKey: h, AttrValue: h},
		} {
			if diff := cmp.Diff(want, mustEvents(t, s, q), cmpEvents); diff != "" {
				t.Errorf("hostile %q: Events(%+v) (-want +got):\n%s", h, q, diff)
			}
		}
		if got := mustCount(t, s, Query{AttrKey: h}); got != 1 {
			t.Errorf("hostile %q: Count(AttrKey) = %d, want 1", h, got)
		}
		if got, err := s.SyscallLog(context.Background(), h, 1, 0, 0); err != nil || len(got) != 1 {
			t.Errorf("hostile %q: SyscallLog = %d events, %v; want 1", h, len(got), err)
		}
	}
	if got := mustCount(t, s, Query{}); got != uint64(len(hostile)) {
		t.Errorf("Count = %d after hostile queries, want %d", got, len(hostile))
	}
}

func testEmpty(t *testing.T, open openFunc) {
	ctx := context.Background()
	s := open(t, Options{})
	if err := s.Insert(ctx, nil); err != nil {
		t.Errorf("Insert(nil) = %v", err)
	}
	got, err := s.Events(ctx, Query{})
	if err != nil || len(got) != 0 {
		t.Errorf("Events on empty log = %v, %v; want none", got, err)
	}
	if n := mustCount(t, s, Query{}); n != 0 {
		t.Errorf("Count on empty log = %d", n)
	}
}
