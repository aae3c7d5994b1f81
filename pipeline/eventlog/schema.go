package eventlog

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/kprobe/kprobe/pipeline/event"
)

// Table is the name of the event log table inside Options.Database.
const Table = "kernel_events"

// columns is the table's column list, in the order of the DDL, the INSERT column list, the
// SELECT list and the RowBinary codec (rowbinary.go), which must all agree.
var columns = []struct{ name, typ string }{
	{"id", "UInt64"},
	{"ts_ns", "Int64 CODEC(Delta, ZSTD(1))"},
	{"ktime_ns", "UInt64 CODEC(Delta, ZSTD(1))"},
	{"node", "LowCardinality(String)"},
	{"pid", "UInt32"},
	{"tid", "UInt32"},
	{"cpu", "UInt32"},
	{"comm", "LowCardinality(String)"},
	{"cgroup_id", "UInt64"},
	{"type", "UInt8"}, // event.Type: a number, so new types need no ALTER
	{"dur_ns", "UInt64"},
	{"syscall", "LowCardinality(String)"},
	{"fd", "Int32"},
	{"bytes", "Int64"},
	{"errno", "Int32"},
	{"dev", "UInt64"},
	{"ino", "UInt64"},
	{"saddr", "IPv6"},
	{"daddr", "IPv6"},
	{"sport", "UInt16"},
	{"dport", "UInt16"},
	// IPv6 alone cannot tell 10.0.0.1 from ::ffff:10.0.0.1 (dual-stack sockets) or :: from
	// no address: bits 0-1 are saddr's family, bits 2-3 daddr's (0 none, 1 IPv4, 2 IPv6).
	{"addr_family", "UInt8"},
	{"preempted", "Bool"},
	{"next_pid", "UInt32"},
	{"next_tid", "UInt32"},
	{"next_comm", "LowCardinality(String)"},
	{"waker_pid", "UInt32"},
	{"waker_tid", "UInt32"},
	{"runq_delay_ns", "UInt64"},
	{"addr", "UInt64"},
	{"ip", "UInt64"},
	{"error_code", "UInt64"},
	{"kernel_fault", "Bool"},
	{"payload", "String CODEC(ZSTD(3))"},
	{"trace_id", "String"},
	{"span_id", "String"},
	{"service", "LowCardinality(String)"},
	{"span_name", "LowCardinality(String)"},
	{"span_join", "LowCardinality(String)"},
	{"attrs", "Map(LowCardinality(String), String)"},
}

// SettlementAttr is the business key with its own skip index.
const SettlementAttr = "settlement.id"

// builder generates every statement, for both engines. Values from callers travel as
// {name:Type} query parameters, never inside the SQL text; numbers are formatted by Go.
type builder struct {
	db    string
	table string // db.kernel_events
}

func newBuilder(db string) builder { return builder{db: db, table: db + "." + Table} }

// param is one {name:Type} query parameter with its raw value.
type param struct{ name, value string }

// stmt is a statement and its parameters.
type stmt struct {
	sql    string
	params []param
}

var columnList = func() string {
	names := make([]string, len(columns))
	for i, c := range columns {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}()

func (b builder) createDatabase() string {
	return "CREATE DATABASE IF NOT EXISTS " + b.db
}

// createTable is the table's DDL. ReplacingMergeTree keyed by (node, pid, ts_ns, id)
// collapses re-inserted events in the background; queries read with FINAL so results are
// exact before that happens. The key serves the hot lookup: one process over a window.
func (b builder) createTable(retentionDays int) string {
	var s strings.Builder
	s.WriteString("CREATE TABLE IF NOT EXISTS " + b.table + "\n(\n")
	for _, c := range columns {
		fmt.Fprintf(&s, "    %s %s,\n", c.name, c.typ)
	}
	s.WriteString(`    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_id span_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_settlement attrs['` + SettlementAttr + `'] TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_values mapValues(attrs) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_ts ts_ns TYPE minmax GRANULARITY 1,
    INDEX idx_dur dur_ns TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY ` + partitionExpr + `
ORDER BY (node, pid, ts_ns, id)
`)
	if retentionDays > 0 {
		s.WriteString(ttlClause(retentionDays) + "\n")
	}
	// Day partitions let TTL drop whole parts instead of rewriting them.
	s.WriteString("SETTINGS ttl_only_drop_parts = 1, " + widePartSetting)
	return s.String()
}

// widePartSetting keeps an insert of up to about a million events (256 MiB before
// compression) one Compact part: a handful of files, where a Wide part has two per column
// and per skip index (about 110). Creating those files took more than half of a 100k-event
// insert (BenchmarkEmbeddedInsert: 115-140 ms of engine CPU Wide, 55-63 ms Compact).
// Merges write Wide parts once they outgrow it.
const (
	widePartName    = "min_bytes_for_wide_part"
	widePartSetting = widePartName + " = 268435456"
)

// alterWidePart returns the ALTER that gives a table created before widePartSetting
// existed the setting, or "" when it has one (an operator's own value is kept).
func (b builder) alterWidePart(engineFull string) string {
	if strings.Contains(engineFull, widePartName) {
		return ""
	}
	return "ALTER TABLE " + b.table + " MODIFY SETTING " + widePartSetting
}

const (
	partitionExpr = "toYYYYMMDD(fromUnixTimestamp64Nano(ts_ns), 'UTC')"
	ttlTime       = "toDateTime(intDiv(ts_ns, 1000000000), 'UTC')"
)

func ttlClause(days int) string {
	return fmt.Sprintf("TTL %s + INTERVAL %d DAY", ttlTime, days)
}

// engineFull reads the table's engine clause, to reconcile its TTL with the options.
func (b builder) engineFull() stmt {
	return stmt{
		sql:    "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {table:String}",
		params: []param{{"db", b.db}, {"table", Table}},
	}
}

func (b builder) createTableQuery() stmt {
	st := b.engineFull()
	st.sql = strings.Replace(st.sql, "engine_full", "create_table_query", 1)
	return st
}

// alterTTL returns the ALTER that gives a table whose engine clause is engineFull the
// wanted retention, or "" when it already has it.
func (b builder) alterTTL(engineFull string, days int) string {
	has := strings.Contains(engineFull, " TTL ")
	want := fmt.Sprintf("toIntervalDay(%d)", days)
	switch {
	case days == 0 && has:
		return "ALTER TABLE " + b.table + " REMOVE TTL"
	case days > 0 && (!has || !strings.Contains(engineFull, want)):
		// Existing parts are left to the merges, not rewritten now.
		return "ALTER TABLE " + b.table + " MODIFY " + ttlClause(days) + " SETTINGS materialize_ttl_after_modify = 0"
	}
	return ""
}

// schemaConn is what ensureSchema needs from an engine.
type schemaConn interface {
	exec(ctx context.Context, sql string) error
	queryString(ctx context.Context, st stmt) (string, error)
}

func ensureSchema(ctx context.Context, c schemaConn, b builder, retentionDays int) error {
	for _, sql := range []string{b.createDatabase(), b.createTable(retentionDays), b.createSpansTable(retentionDays)} {
		if err := c.exec(ctx, sql); err != nil {
			return err
		}
	}
	full, err := c.queryString(ctx, b.engineFull())
	if err != nil {
		return fmt.Errorf("reading table definition: %w", err)
	}
	if alter := b.alterTTL(full, retentionDays); alter != "" {
		if err := c.exec(ctx, alter); err != nil {
			return fmt.Errorf("changing retention: %w", err)
		}
	}
	if alter := b.alterWidePart(full); alter != "" {
		if err := c.exec(ctx, alter); err != nil {
			return fmt.Errorf("setting the part format: %w", err)
		}
	}
	return nil
}

// insertSetting is turned off for inserts: with it, ReplacingMergeTree collapses
// duplicates inside each inserted block, which made inserts 8x slower here (1 M rows:
// 0.5 s without, 4 s with). Reads use FINAL, so results are exact either way.
const insertSetting = "optimize_on_insert"

// insert is the INSERT prefix; each engine supplies the rows its own way.
func (b builder) insert() string {
	return "INSERT INTO " + b.table + " (" + columnList + ")"
}

// insertNative is the embedded engine's INSERT: rows in Native (native.go) from the file
// named by the {path:String} parameter.
func (b builder) insertNative() string {
	return b.insert() + " SELECT * FROM file({path:String}, 'Native', '" + nativeStructure + "')"
}

// insertRowBinary reads the rows from a RowBinary file instead: the former path, about
// five times slower, kept as BenchmarkEmbeddedInsert's baseline.
func (b builder) insertRowBinary() string {
	structure := make([]string, len(columns))
	for i, c := range columns {
		typ, _, _ := strings.Cut(c.typ, " CODEC")
		structure[i] = c.name + " " + typ
	}
	return b.insert() + " SELECT * FROM file({path:String}, 'RowBinary', '" + strings.Join(structure, ", ") + "')"
}

// where builds the WHERE clause for q.
func where(q Query) (string, []param) {
	var conds []string
	var params []param
	str := func(cond, name, value string) {
		conds = append(conds, cond)
		params = append(params, param{name, value})
	}
	if q.Node != "" {
		str("node = {node:String}", "node", q.Node)
	}
	if q.PID != 0 {
		conds = append(conds, "pid = "+strconv.FormatUint(uint64(q.PID), 10))
	}
	if q.TID != 0 {
		conds = append(conds, "tid = "+strconv.FormatUint(uint64(q.TID), 10))
	}
	if q.From != 0 {
		conds = append(conds, "ts_ns >= "+strconv.FormatInt(q.From, 10))
	}
	if q.To != 0 {
		conds = append(conds, "ts_ns < "+strconv.FormatInt(q.To, 10))
	}
	if q.TraceID != "" {
		str("trace_id = {trace_id:String}", "trace_id", q.TraceID)
	}
	if q.SpanID != "" {
		str("span_id = {span_id:String}", "span_id", q.SpanID)
	}
	if q.AttrKey != "" {
		if q.AttrValue != "" {
			str("attrs[{attr_key:String}] = {attr_value:String}", "attr_key", q.AttrKey)
			params = append(params, param{"attr_value", q.AttrValue})
		} else {
			str("mapContains(attrs, {attr_key:String})", "attr_key", q.AttrKey)
		}
	}
	if len(q.Types) > 0 {
		ts := make([]string, len(q.Types))
		for i, t := range q.Types {
			ts[i] = strconv.Itoa(int(t))
		}
		conds = append(conds, "type IN ("+strings.Join(ts, ", ")+")")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), params
}

// FINAL makes reads exact while re-inserted duplicates still wait for a merge.
func (b builder) events(q Query) stmt {
	w, params := where(q)
	sql := "SELECT " + columnList + " FROM " + b.table + " FINAL" + w + " ORDER BY ts_ns, id"
	if q.Limit > 0 {
		sql += " LIMIT " + strconv.Itoa(q.Limit)
	}
	return stmt{sql: sql, params: params}
}

func (b builder) count(q Query) stmt {
	w, params := where(q)
	return stmt{sql: "SELECT count() FROM " + b.table + " FINAL" + w, params: params}
}

func syscallQuery(node string, pid uint32, from, to int64) Query {
	return Query{Node: node, PID: pid, From: from, To: to, Types: []event.Type{event.TypeRead, event.TypeWrite}}
}

func (b builder) slowest(from, to int64, n int) stmt {
	w, params := where(Query{From: from, To: to})
	return stmt{
		sql:    "SELECT " + columnList + " FROM " + b.table + " FINAL" + w + " ORDER BY dur_ns DESC, ts_ns, id LIMIT " + strconv.Itoa(n),
		params: params,
	}
}

// paramEscaper encodes a raw value for the engine: ClickHouse reads parameter values as
// TSV-escaped text, where a backslash starts an escape, tab/newline/CR end the value and
// NUL is dropped. (clickhouse-go applies the same escaping to Named args itself.)
var paramEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`, "\x00", `\0`)

func escapeParam(s string) string { return paramEscaper.Replace(s) }
