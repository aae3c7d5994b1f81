package eventlog

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// TestServerContract runs the contract against a real server when one is configured:
// KPROBE_CLICKHOUSE_ADDR=host:9000 (or a clickhouse:// DSN).
func TestServerContract(t *testing.T) {
	addr := os.Getenv("KPROBE_CLICKHOUSE_ADDR")
	if addr == "" {
		t.Skip("KPROBE_CLICKHOUSE_ADDR not set: no ClickHouse server to test against (the fakes below cover the driver code)")
	}
	runContract(t, func(t *testing.T, opts Options) *Log {
		t.Helper()
		if opts.Database == "" {
			opts.Database = fmt.Sprintf("kprobe_test_%d_%s", os.Getpid(), testDatabase())
		}
		s, err := OpenServer(context.Background(), addr, opts)
		if err != nil {
			t.Fatalf("OpenServer: %v", err)
		}
		t.Cleanup(func() {
			s.exec(context.Background(), "DROP DATABASE IF EXISTS "+opts.Database)
			s.Close()
		})
		return s
	})
}

// fakeConn is a driver.Conn that records statements and keeps appended rows per table,
// serving them back to a SELECT of that table: enough to run the driver-facing code
// without a server. Values go through as the real driver's columns would take and give
// them: a Scan destination of another type than the appended value is refused.
type fakeConn struct {
	driver.Conn // unimplemented methods panic

	execs      []string
	queries    []string
	args       [][]any
	engineFull string
	ddl        string             // create_table_query; "" for this build's table
	rows       map[string][][]any // by table
	canned     map[string][][]any // the answer to a query containing the key
	sent       int
	failSend   error
	closed     bool
}

// serverDDL is the table's definition as a ClickHouse server shows it (names quoted).
func serverDDL(cols []column[event.Event]) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE kp.kernel_events\n(\n")
	for _, c := range cols {
		fmt.Fprintf(&b, "    `%s` %s,\n", c.name, c.typ)
	}
	b.WriteString(")\nENGINE = ReplacingMergeTree")
	return b.String()
}

// fakeTable is the table a statement names.
func fakeTable(sql string) string {
	for _, t := range []string{Table, SpansTable} {
		if strings.Contains(sql, "."+t+" ") || strings.HasSuffix(sql, "."+t) {
			return t
		}
	}
	return ""
}

func (c *fakeConn) Exec(_ context.Context, sql string, _ ...any) error {
	c.execs = append(c.execs, sql)
	return nil
}

func (c *fakeConn) Query(_ context.Context, sql string, args ...any) (driver.Rows, error) {
	c.queries, c.args = append(c.queries, sql), append(c.args, args)
	switch {
	case strings.Contains(sql, "engine_full"):
		return &fakeRows{rows: [][]any{{c.engineFull}}, i: -1}, nil
	case strings.Contains(sql, "create_table_query"):
		ddl := c.ddl
		if ddl == "" {
			ddl = serverDDL(events.cols)
		}
		return &fakeRows{rows: [][]any{{ddl}}, i: -1}, nil
	case strings.HasPrefix(sql, "SELECT count()"):
		return &fakeRows{rows: [][]any{{uint64(len(c.rows[Table]))}}, i: -1}, nil
	case strings.HasPrefix(sql, "SELECT "+events.selectList()+" FROM"):
		return &fakeRows{rows: c.rows[Table], i: -1}, nil
	}
	for k, rows := range c.canned {
		if strings.Contains(sql, k) {
			return &fakeRows{rows: rows, i: -1}, nil
		}
	}
	return nil, fmt.Errorf("fake: unexpected query %q", sql)
}

func (c *fakeConn) PrepareBatch(_ context.Context, sql string, _ ...driver.PrepareBatchOption) (driver.Batch, error) {
	if !strings.HasPrefix(sql, "INSERT INTO ") {
		return nil, fmt.Errorf("fake: not an insert: %q", sql)
	}
	c.queries = append(c.queries, sql)
	open, close := strings.Index(sql, "("), strings.LastIndex(sql, ")")
	return &fakeBatch{conn: c, table: fakeTable(sql[:open]), columns: strings.Count(sql[open:close], ",") + 1}, nil
}

func (c *fakeConn) Close() error {
	c.closed = true
	return nil
}

type fakeBatch struct {
	driver.Batch
	conn    *fakeConn
	table   string
	columns int
	rows    [][]any
	sent    bool
}

func (b *fakeBatch) Append(v ...any) error {
	if len(v) != b.columns {
		return fmt.Errorf("fake: %d values for %d columns", len(v), b.columns)
	}
	b.rows = append(b.rows, slices.Clone(v))
	return nil
}

func (b *fakeBatch) Send() error {
	if b.conn.failSend != nil {
		return b.conn.failSend
	}
	b.sent = true
	if b.conn.rows == nil {
		b.conn.rows = map[string][][]any{}
	}
	b.conn.rows[b.table] = append(b.conn.rows[b.table], b.rows...)
	b.conn.sent++
	return nil
}

func (b *fakeBatch) IsSent() bool { return b.sent }
func (b *fakeBatch) Close() error { return nil }

// assign stores vals into the Scan destinations as the driver would, refusing a type
// mismatch (which the real driver refuses too).
func assign(dest, vals []any) error {
	if len(dest) != len(vals) {
		return fmt.Errorf("fake: scan into %d destinations, have %d columns", len(dest), len(vals))
	}
	for i, d := range dest {
		dv, v := reflect.ValueOf(d), reflect.ValueOf(vals[i])
		if dv.Kind() != reflect.Pointer || dv.Elem().Type() != v.Type() {
			return fmt.Errorf("fake: column %d: cannot scan %T into %T", i, vals[i], d)
		}
		dv.Elem().Set(v)
	}
	return nil
}

type fakeRows struct {
	driver.Rows
	rows [][]any
	i    int
}

func (r *fakeRows) Next() bool             { r.i++; return r.i < len(r.rows) }
func (r *fakeRows) Scan(dest ...any) error { return assign(dest, r.rows[r.i]) }
func (r *fakeRows) Err() error             { return nil }
func (r *fakeRows) Close() error           { return nil }

func TestServerSchema(t *testing.T) {
	for _, tc := range []struct {
		name       string
		days       int
		engineFull string // what the server reports after CREATE
		wantAlter  string // "" for no ALTER
		ddl        string // the table's columns, when not this build's
	}{
		{"new, keep forever", 0, "ReplacingMergeTree PARTITION BY x ORDER BY y SETTINGS ttl_only_drop_parts = 1, min_bytes_for_wide_part = 268435456", "", ""},
		{"made before the part-format setting", 0, "ReplacingMergeTree PARTITION BY x ORDER BY y SETTINGS ttl_only_drop_parts = 1",
			"ALTER TABLE kp.kernel_events MODIFY SETTING min_bytes_for_wide_part = 268435456", ""},
		{"operator's own part format", 0, "ReplacingMergeTree ORDER BY y SETTINGS min_bytes_for_wide_part = 0", "", ""},
		{"new with retention", 7, "ReplacingMergeTree ORDER BY y TTL toDateTime(intDiv(ts_ns, 1000000000), 'UTC') + toIntervalDay(7) SETTINGS a, min_bytes_for_wide_part = 268435456", "", ""},
		{"retention changed", 3, "ReplacingMergeTree ORDER BY y TTL toDateTime(intDiv(ts_ns, 1000000000), 'UTC') + toIntervalDay(30) SETTINGS min_bytes_for_wide_part = 1",
			"ALTER TABLE kp.kernel_events MODIFY TTL toDateTime(intDiv(ts_ns, 1000000000), 'UTC') + INTERVAL 3 DAY SETTINGS materialize_ttl_after_modify = 0", ""},
		{"retention added", 1, "ReplacingMergeTree ORDER BY y SETTINGS min_bytes_for_wide_part = 1",
			"ALTER TABLE kp.kernel_events MODIFY TTL toDateTime(intDiv(ts_ns, 1000000000), 'UTC') + INTERVAL 1 DAY SETTINGS materialize_ttl_after_modify = 0", ""},
		{"retention removed", 0, "ReplacingMergeTree ORDER BY y TTL toDateTime(intDiv(ts_ns, 1000000000), 'UTC') + toIntervalDay(7) SETTINGS min_bytes_for_wide_part = 1",
			"ALTER TABLE kp.kernel_events REMOVE TTL", ""},
		{"made before the flight recorder's columns", 0, "ReplacingMergeTree ORDER BY y SETTINGS min_bytes_for_wide_part = 1",
			"ALTER TABLE kp.kernel_events ADD COLUMN IF NOT EXISTS path String CODEC(ZSTD(1)), ADD COLUMN IF NOT EXISTS truncated UInt64, " +
				"ADD COLUMN IF NOT EXISTS arg0 Int64, ADD COLUMN IF NOT EXISTS arg1 Int64, ADD COLUMN IF NOT EXISTS arg2 Int64, " +
				"ADD COLUMN IF NOT EXISTS arg3 Int64, ADD COLUMN IF NOT EXISTS arg4 Int64, ADD COLUMN IF NOT EXISTS arg5 Int64",
			serverDDL(slices.Delete(slices.Clone(events.cols), len(events.cols)-9, len(events.cols)-1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &fakeConn{engineFull: tc.engineFull, ddl: tc.ddl}
			if _, err := newServer(context.Background(), c, Options{Database: "kp", RetentionDays: tc.days}); err != nil {
				t.Fatal(err)
			}
			b := newBuilder("kp")
			want := []string{"CREATE DATABASE IF NOT EXISTS kp", b.createTable(tc.days), b.createSpansTable(tc.days)}
			if tc.wantAlter != "" {
				want = append(want, tc.wantAlter)
			}
			if diff := cmp.Diff(want, c.execs); diff != "" {
				t.Errorf("statements (-want +got):\n%s", diff)
			}
		})
	}
}

func newFakeServer(t *testing.T) (*Log, *fakeConn) {
	t.Helper()
	c := &fakeConn{}
	s, err := newServer(context.Background(), c, Options{Database: "kp"})
	if err != nil {
		t.Fatal(err)
	}
	c.queries, c.args = nil, nil
	return s, c
}

func TestServerRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, c := newFakeServer(t)
	want := fullEvents()
	if err := s.Insert(ctx, want); err != nil {
		t.Fatal(err)
	}
	rows := c.rows[Table]
	if c.sent != 1 || len(rows) != len(want) {
		t.Fatalf("sent %d batches with %d rows, want 1 with %d", c.sent, len(rows), len(want))
	}
	if diff := cmp.Diff([]string{"INSERT INTO kp.kernel_events (" + events.names() + ")"}, c.queries); diff != "" {
		t.Errorf("insert statement (-want +got):\n%s", diff)
	}
	// The appended values are what the driver's columns take: check the converted ones.
	col := func(name string) int {
		t.Helper()
		i := slices.IndexFunc(events.cols, func(c column[event.Event]) bool { return c.name == name })
		if i < 0 {
			t.Fatalf("no column %s", name)
		}
		return i
	}
	for _, tc := range []struct {
		row    int
		column string
		want   any
	}{
		{0, "id", uint64(1)},
		{0, "type", uint8(event.TypeRead)},
		{0, "payload", string(want[0].Payload)},
		{0, "preempted", false},
		{5, "preempted", true},
		{2, "saddr", [16]byte(netip.MustParseAddr("::ffff:10.0.0.1").As16())},
		{2, "addr_family", uint8(familyV4 | familyV4<<2)},
		{3, "addr_family", uint8(familyV6 | familyV6<<2)},
		{1, "attrs", map[string]string{}}, // the driver refuses a nil map
		{1, "fd", int32(-1)},
	} {
		if got := rows[tc.row][col(tc.column)]; !reflect.DeepEqual(got, tc.want) {
			t.Errorf("row %d column %s: appended %#v, want %#v", tc.row, tc.column, got, tc.want)
		}
	}

	got, err := s.Events(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpEvents); diff != "" {
		t.Errorf("round trip through the driver values (-want +got):\n%s", diff)
	}
	if got[1].Payload != nil || got[1].Attrs != nil {
		t.Errorf("absent payload/attrs came back as %#v / %#v", got[1].Payload, got[1].Attrs)
	}
	n, err := s.Count(ctx, Query{})
	if err != nil || n != uint64(len(want)) {
		t.Errorf("Count = %d, %v", n, err)
	}
}

func TestServerQueryArgs(t *testing.T) {
	ctx := context.Background()
	s, c := newFakeServer(t)
	hostileNode := `x'; DROP TABLE t --` + "\x00\t\\"
	calls := []struct {
		name string
		run  func() error
		want stmt
	}{
		{"Events", func() error {
			_, err := s.Events(ctx, Query{Node: hostileNode, PID: 7, TraceID: "tr", AttrKey: "settlement.id", AttrValue: "4821", Limit: 5})
			return err
		}, newBuilder("kp").events(Query{Node: hostileNode, PID: 7, TraceID: "tr", AttrKey: "settlement.id", AttrValue: "4821", Limit: 5})},
		{"SyscallLog", func() error { _, err := s.SyscallLog(ctx, "n", 9, 1, 2); return err },
			newBuilder("kp").events(syscallQuery("n", 9, 1, 2))},
		{"Slowest", func() error {
			_, err := s.Events(ctx, Query{From: 1, To: 2, Order: OrderSlowest, Limit: 3})
			return err
		},
			newBuilder("kp").events(Query{From: 1, To: 2, Order: OrderSlowest, Limit: 3})},
		{"Count", func() error { _, err := s.Count(ctx, Query{SpanID: "sp"}); return err }, newBuilder("kp").count(Query{SpanID: "sp"})},
		{"EventTotals", func() error { _, err := s.EventTotals(ctx, Query{Node: hostileNode}); return err },
			newBuilder("kp").totals(Query{Node: hostileNode})},
		{"SpanGroups", func() error {
			_, err := s.SpanGroups(ctx, SpanGroupQuery{Key: hostileNode, Value: "v", From: 5, Limit: 2})
			return err
		}, newBuilder("kp").spanGroups(SpanGroupQuery{Key: hostileNode, Value: "v", From: 5, Limit: 2})},
	}
	c.canned = map[string][][]any{"g_value": nil, "t_events": nil}
	for _, call := range calls {
		t.Run(call.name, func(t *testing.T) {
			c.queries, c.args = nil, nil
			if err := call.run(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{call.want.sql}, c.queries); diff != "" {
				t.Errorf("SQL (-want +got):\n%s", diff)
			}
			// Values go to the driver raw, as named parameters; it escapes them itself.
			var got []param
			for _, a := range c.args[0] {
				nv, ok := a.(driver.NamedValue)
				if !ok {
					t.Fatalf("arg %#v is not a driver.NamedValue", a)
				}
				got = append(got, param{nv.Name, nv.Value.(string)})
			}
			if diff := cmp.Diff(call.want.params, got, cmp.AllowUnexported(param{})); diff != "" {
				t.Errorf("params (-want +got):\n%s", diff)
			}
		})
	}
	if strings.Contains(c.queries[0], "DROP") {
		t.Errorf("a value reached the SQL text: %s", c.queries[0])
	}
}

// TestServerResults: computed results and spans travel through the driver's values.
func TestServerResults(t *testing.T) {
	ctx := context.Background()
	s, c := newFakeServer(t)
	c.canned = map[string][][]any{
		"g_value": {
			{"4821", "t1", t0, t0 + 9, "svc", "h", uint32(7), uint64(2), uint64(1), uint64(1)},
			{"4820", "t0", t0 - 5, t0, "svc", "h", uint32(8), uint64(1), uint64(0), uint64(0)},
		},
		"t_events": {{uint8(event.TypeWrite), uint64(3), uint64(300), t0, "java"}},
	}
	groups, err := s.SpanGroups(ctx, SpanGroupQuery{Key: "settlement.id"})
	if err != nil {
		t.Fatal(err)
	}
	want := []SpanGroup{
		{Value: "4821", TraceID: "t1", StartNs: t0, EndNs: t0 + 9, Service: "svc", Host: "h", PID: 7, Spans: 2, Errors: 1, OKs: 1},
		{Value: "4820", TraceID: "t0", StartNs: t0 - 5, EndNs: t0, Service: "svc", Host: "h", PID: 8, Spans: 1},
	}
	if diff := cmp.Diff(want, groups); diff != "" {
		t.Errorf("SpanGroups (-want +got):\n%s", diff)
	}
	totals, err := s.EventTotals(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]TypeTotal{{Type: event.TypeWrite, Events: 3, DurNs: 300, FirstNs: t0, Comm: "java"}}, totals); diff != "" {
		t.Errorf("EventTotals (-want +got):\n%s", diff)
	}

	sp := []span.Span{{TraceID: "t", SpanID: "s", Name: "n", PID: 3, StartNs: 1, EndNs: 2, Status: span.StatusOK}}
	if err := s.InsertSpans(ctx, sp); err != nil {
		t.Fatal(err)
	}
	wantRow := []any{"t", "s", "", "n", "", "", uint32(3), uint32(0), int64(1), int64(2), span.StatusOK, map[string]string{}}
	if diff := cmp.Diff([][]any{wantRow}, c.rows[SpansTable]); diff != "" {
		t.Errorf("appended span (-want +got):\n%s", diff)
	}
}

func TestServerInsertErrors(t *testing.T) {
	s, c := newFakeServer(t)
	c.failSend = errors.New("connection reset")
	err := s.Insert(context.Background(), fullEvents())
	if err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("Insert with a failing Send: err = %v", err)
	}
	if err := s.Insert(context.Background(), nil); err != nil {
		t.Errorf("Insert(nil) = %v", err)
	}
	if err := s.Close(); err != nil || !c.closed {
		t.Errorf("Close = %v, closed %v", err, c.closed)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"localhost:9000": "localhost:9000",
		"clickhouse://user:secret@db:9000/x?dial_timeout=1s": "clickhouse://***@db:9000/x?dial_timeout=1s",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}
