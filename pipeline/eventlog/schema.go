package eventlog

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kprobe/kprobe/pipeline/event"
)

// indexedAttr is the business key with a skip index of its own (idx_attr_values serves
// every other key's values); tables made before the index list changed keep it.
const indexedAttr = "settlement.id"

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

// replacingKey is the kernel event table's sorting key: the rows ReplacingMergeTree
// collapses into one share it.
const replacingKey = "node, pid, ts_ns, id"

func (b builder) createDatabase() string {
	return "CREATE DATABASE IF NOT EXISTS " + b.db
}

// createTable is the table's DDL. ReplacingMergeTree keyed by (node, pid, ts_ns, id)
// collapses re-inserted events in the background; queries read with FINAL so results are
// exact before that happens. The key serves the hot lookup: one process over a window.
func (b builder) createTable(retentionDays int) string {
	var s strings.Builder
	s.WriteString("CREATE TABLE IF NOT EXISTS " + b.table + "\n(\n")
	for _, c := range events.cols {
		fmt.Fprintf(&s, "    %s %s,\n", c.name, c.typ)
	}
	s.WriteString(`    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_id span_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_settlement attrs['` + indexedAttr + `'] TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_attr_values mapValues(attrs) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_ts ts_ns TYPE minmax GRANULARITY 1,
    INDEX idx_dur dur_ns TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY ` + partitionExpr + `
ORDER BY (` + replacingKey + `)
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

// alterAddColumns returns the ALTER that gives a table created by an older build the
// columns added since (they are appended to the column list), or "" when it has them all.
func (b builder) alterAddColumns(ddl string) string {
	var add []string
	for _, c := range events.cols {
		if !strings.Contains(ddl, "`"+c.name+"` ") {
			add = append(add, "ADD COLUMN IF NOT EXISTS "+c.name+" "+c.typ)
		}
	}
	if len(add) == 0 {
		return ""
	}
	return "ALTER TABLE " + b.table + " " + strings.Join(add, ", ")
}

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
func (b builder) engineFull() stmt { return b.tableInfo("engine_full") }

func (b builder) createTableQuery() stmt { return b.tableInfo("create_table_query") }

func (b builder) tableInfo(col string) stmt {
	return stmt{
		sql:    "SELECT " + col + " AS v FROM system.tables WHERE database = {db:String} AND name = {table:String}",
		params: []param{{"db", b.db}, {"table", Table}},
	}
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

// createSpansTable: ReplacingMergeTree by (trace_id, span_id) so a re-sent span is kept once.
func (b builder) createSpansTable(retentionDays int) string {
	var s strings.Builder
	s.WriteString("CREATE TABLE IF NOT EXISTS " + b.spansTable() + "\n(\n")
	for i, c := range spans.cols {
		s.WriteString("    " + c.name + " " + c.typ)
		if i < len(spans.cols)-1 {
			s.WriteString(",")
		}
		s.WriteString("\n")
	}
	s.WriteString(`)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(fromUnixTimestamp64Nano(start_ns), 'UTC')
ORDER BY (trace_id, span_id)
`)
	if retentionDays > 0 {
		s.WriteString("TTL toDateTime(intDiv(start_ns, 1000000000), 'UTC') + INTERVAL " + strconv.Itoa(retentionDays) + " DAY\n")
	}
	return s.String()
}

func (b builder) spansTable() string { return b.db + "." + SpansTable }

// insertSetting is turned off for inserts: with it, ReplacingMergeTree collapses
// duplicates inside each inserted block, which made inserts 8x slower here (1 M rows:
// 0.5 s without, 4 s with). Reads use FINAL, so results are exact either way.
const insertSetting = "optimize_on_insert"

// insertEvents and insertSpans are the INSERT prefixes; each engine supplies the rows its
// own way.
func (b builder) insertEvents() string { return "INSERT INTO " + b.table + " (" + events.names() + ")" }
func (b builder) insertSpans() string {
	return "INSERT INTO " + b.spansTable() + " (" + spans.names() + ")"
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
		cond, ps := attrCond(q.AttrKey, q.AttrValue)
		conds, params = append(conds, cond), append(params, ps...)
	}
	if len(q.Types) > 0 {
		ts := make([]string, len(q.Types))
		for i, t := range q.Types {
			ts[i] = strconv.Itoa(int(t))
		}
		conds = append(conds, "type IN ("+strings.Join(ts, ", ")+")")
	}
	if len(q.IDs) > 0 {
		ids := make([]string, len(q.IDs))
		for i, id := range q.IDs {
			ids[i] = strconv.FormatUint(id, 10)
		}
		conds = append(conds, "id IN ("+strings.Join(ids, ", ")+")")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), params
}

// attrCond matches rows whose attrs[key] is value, or that carry key when value is "".
func attrCond(key, value string) (string, []param) {
	if value == "" {
		return "mapContains(attrs, {attr_key:String})", []param{{"attr_key", key}}
	}
	return "attrs[{attr_key:String}] = {attr_value:String}", []param{{"attr_key", key}, {"attr_value", value}}
}

// events selects the events matching q. FINAL makes reads exact while re-inserted
// duplicates still wait for a merge.
func (b builder) events(q Query) stmt {
	w, params := where(q)
	order := " ORDER BY ts_ns, id"
	if q.Order == OrderSlowest {
		order = " ORDER BY dur_ns DESC, ts_ns, id"
	}
	sql := "SELECT " + events.selectList() + " FROM " + b.table + " FINAL" + w + order
	if q.Limit > 0 {
		sql += " LIMIT " + strconv.Itoa(q.Limit)
	}
	return stmt{sql: sql, params: params}
}

func (b builder) count(q Query) stmt {
	w, params := where(q)
	return stmt{sql: "SELECT " + counts.selectList() + " FROM " + b.table + " FINAL" + w, params: params}
}

func (b builder) totals(q Query) stmt {
	w, params := where(q)
	return stmt{
		sql:    "SELECT " + typeTotals.selectList() + " FROM " + b.table + " FINAL" + w + " GROUP BY type ORDER BY type",
		params: params,
	}
}

// valueTotals counts the events of every value in values of the attribute key, in one
// scan (a start screen lists tens of subjects: one query each was a scan each). It reads
// without FINAL: FINAL merges every row of the overlapping parts by the sorting key before
// filtering (4.9 s on a 10 M-event log of seven parts, 50 ms without), while the rows that
// match are few. Counting the distinct sorting keys among them (replacingKey) is as exact:
// a re-inserted event is a copy of the same event, so its copies all match or none does.
// min(ts_ns) and the earliest comm do not change with copies.
func (b builder) valueTotals(key string, values []string) stmt {
	params := []param{{"attr_key", key}}
	in := make([]string, len(values))
	for i, v := range values {
		name := "v" + strconv.Itoa(i)
		in[i] = "{" + name + ":String}"
		params = append(params, param{name, v})
	}
	return stmt{
		sql: "SELECT " + valueTotals.selectList() + " FROM " + b.table + " WHERE attrs[{attr_key:String}] IN (" +
			strings.Join(in, ", ") + ") GROUP BY v_value",
		params: params,
	}
}

func syscallQuery(node string, pid uint32, from, to int64) Query {
	return Query{Node: node, PID: pid, From: from, To: to, Types: []event.Type{event.TypeRead, event.TypeWrite, event.TypeSyscall}}
}

// spanGroups groups the spans that carry q.Key by its value: a group lasts from its
// first span's start to its last span's end.
func (b builder) spanGroups(q SpanGroupQuery) stmt {
	conds := []string{"mapContains(attrs, {key:String})"}
	params := []param{{"key", q.Key}}
	if q.Value != "" {
		conds = append(conds, "attrs[{key:String}] = {value:String}")
		params = append(params, param{"value", q.Value})
	}
	if q.From != 0 {
		conds = append(conds, "start_ns >= "+strconv.FormatInt(q.From, 10))
	}
	if q.To != 0 {
		conds = append(conds, "start_ns < "+strconv.FormatInt(q.To, 10))
	}
	sql := "SELECT " + spanGroups.selectList() + " FROM " + b.spansTable() + " FINAL WHERE " + strings.Join(conds, " AND ") +
		" GROUP BY g_value"
	if q.FailedOnly {
		sql += " HAVING g_errors > 0"
	}
	sql += " ORDER BY g_end_ns - g_start_ns DESC, g_value"
	if q.Limit > 0 {
		sql += " LIMIT " + strconv.Itoa(q.Limit)
	}
	return stmt{sql: sql, params: params}
}

// paramEscaper encodes a raw value for the engine: ClickHouse reads parameter values as
// TSV-escaped text, where a backslash starts an escape, tab/newline/CR end the value and
// NUL is dropped. (clickhouse-go applies the same escaping to Named args itself.)
var paramEscaper = strings.NewReplacer(`\`, `\\`, "\t", `\t`, "\n", `\n`, "\r", `\r`, "\x00", `\0`)

func escapeParam(s string) string { return paramEscaper.Replace(s) }
