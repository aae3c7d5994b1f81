package eventlog

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/event"
)

func TestWhere(t *testing.T) {
	for _, tc := range []struct {
		name   string
		q      Query
		want   string
		params []param
	}{
		{"empty", Query{}, "", nil},
		{"process window", Query{Node: "n1", PID: 1, TID: 2, From: 10, To: 20},
			" WHERE node = {node:String} AND pid = 1 AND tid = 2 AND ts_ns >= 10 AND ts_ns < 20", []param{{"node", "n1"}}},
		{"negative time", Query{From: -5}, " WHERE ts_ns >= -5", nil},
		{"trace span attr", Query{TraceID: "t", SpanID: "s", AttrKey: "k", AttrValue: "v"},
			" WHERE trace_id = {trace_id:String} AND span_id = {span_id:String} AND attrs[{attr_key:String}] = {attr_value:String}",
			[]param{{"trace_id", "t"}, {"span_id", "s"}, {"attr_key", "k"}, {"attr_value", "v"}}},
		{"attr key", Query{AttrKey: "k"}, " WHERE mapContains(attrs, {attr_key:String})", []param{{"attr_key", "k"}}},
		{"types", Query{Types: []event.Type{event.TypeRead, event.TypePageFault}}, " WHERE type IN (1, 6)", nil},
		{"ids", Query{IDs: []uint64{18446744073709551615, 7}}, " WHERE id IN (18446744073709551615, 7)", nil},
		{"hostile stays a parameter", Query{Node: "'; DROP TABLE x --"},
			" WHERE node = {node:String}", []param{{"node", "'; DROP TABLE x --"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, params := where(tc.q)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("SQL (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.params, params, cmp.AllowUnexported(param{})); diff != "" {
				t.Errorf("params (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatements(t *testing.T) {
	b := newBuilder("kprobe")
	for _, tc := range []struct{ got, want string }{
		{b.events(Query{PID: 1, Limit: 10}).sql, "SELECT " + events.names() + " FROM kprobe.kernel_events FINAL WHERE pid = 1 ORDER BY ts_ns, id LIMIT 10"},
		{b.count(Query{}).sql, "SELECT count() AS n FROM kprobe.kernel_events FINAL"},
		{b.events(Query{From: 1, To: 2, Order: OrderSlowest, Limit: 5}).sql, "SELECT " + events.names() + " FROM kprobe.kernel_events FINAL WHERE ts_ns >= 1 AND ts_ns < 2 ORDER BY dur_ns DESC, ts_ns, id LIMIT 5"},
		{b.insertEvents(), "INSERT INTO kprobe.kernel_events (" + events.names() + ")"},
		{b.insertSpans(), "INSERT INTO kprobe.spans (" + spans.names() + ")"},
		{b.totals(Query{PID: 1}).sql, "SELECT type, count() AS t_events, sum(dur_ns) AS t_dur_ns, min(ts_ns) AS t_first_ns, argMin(comm, (ts_ns, id)) AS t_comm" +
			" FROM kprobe.kernel_events FINAL WHERE pid = 1 GROUP BY type ORDER BY type"},
		{b.spanGroups(SpanGroupQuery{Key: "k", Value: "v", From: 1, To: 2, FailedOnly: true, Limit: 3}).sql, "SELECT " + spanGroups.selectList() +
			" FROM kprobe.spans FINAL WHERE mapContains(attrs, {key:String}) AND attrs[{key:String}] = {value:String} AND start_ns >= 1 AND start_ns < 2" +
			" GROUP BY g_value HAVING g_errors > 0 ORDER BY g_end_ns - g_start_ns DESC, g_value LIMIT 3"},
	} {
		if diff := cmp.Diff(tc.want, tc.got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	}
	ddl := b.createTable(0)
	if strings.Contains(ddl, "TTL") {
		t.Errorf("retention 0 has a TTL:\n%s", ddl)
	}
	if want := "TTL toDateTime(intDiv(ts_ns, 1000000000), 'UTC') + INTERVAL 14 DAY"; !strings.Contains(b.createTable(14), want) {
		t.Errorf("retention 14 lacks %q:\n%s", want, b.createTable(14))
	}
	if n := strings.Count(ddl, ",\n"); n != len(events.cols)+5 {
		t.Errorf("DDL has %d column/index lines, want %d", n, len(events.cols)+5)
	}
}

func TestEscapeParam(t *testing.T) {
	for in, want := range map[string]string{
		"plain":      "plain",
		`a\b`:        `a\\b`,
		"tab\there":  `tab\there`,
		"nl\ncr\r":   `nl\ncr\r`,
		"nul\x00":    `nul\0`,
		`'quote'`:    `'quote'`,
		`\N`:         `\\N`,
		"{x:String}": "{x:String}",
		"ünïcode→💥":  "ünïcode→💥",
	} {
		if got := escapeParam(in); got != want {
			t.Errorf("escapeParam(%q) = %q, want %q", in, got, want)
		}
	}
}
