package eventlog

import (
	"encoding/binary"
	"strconv"
	"strings"

	"github.com/kprobe/kprobe/pipeline/span"
)

// SpansTable keeps the spans the engine received, so an investigation can start from a
// settlement's own span (its duration, trace and process) before drilling into events.
const SpansTable = "spans"

var spanColumns = []struct{ name, typ string }{
	{"trace_id", "String"},
	{"span_id", "String"},
	{"parent_id", "String"},
	{"name", "LowCardinality(String)"},
	{"service", "LowCardinality(String)"},
	{"host", "LowCardinality(String)"},
	{"pid", "UInt32"},
	{"tid", "UInt32"},
	{"start_ns", "Int64"},
	{"end_ns", "Int64"},
	{"status", "LowCardinality(String)"},
	{"attrs", "Map(LowCardinality(String), String)"},
}

func spanColumnList() string {
	names := make([]string, len(spanColumns))
	for i, c := range spanColumns {
		names[i] = c.name
	}
	return strings.Join(names, ", ")
}

// Settlement is one settlement as its spans show it.
type Settlement struct {
	ID             string
	TraceID        string
	StartNs, EndNs int64
	Service, Host  string
	PID            uint32
	Spans          uint64 // spans carrying this settlement.id
}

// SettlementQuery selects settlements by start time (From inclusive, To exclusive; 0 is
// open), slowest first.
type SettlementQuery struct {
	From, To int64
	Limit    int
}

func (b builder) spansTable() string { return b.db + "." + SpansTable }

// createSpansTable: ReplacingMergeTree by (trace_id, span_id) so a re-sent span is kept once.
func (b builder) createSpansTable(retentionDays int) string {
	var s strings.Builder
	s.WriteString("CREATE TABLE IF NOT EXISTS " + b.spansTable() + "\n(\n")
	for i, c := range spanColumns {
		s.WriteString("    " + c.name + " " + c.typ)
		if i < len(spanColumns)-1 {
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

func (b builder) insertSpans() string {
	return "INSERT INTO " + b.spansTable() + " (" + spanColumnList() + ")"
}

func (b builder) insertSpansFromFile() string {
	structure := make([]string, len(spanColumns))
	for i, c := range spanColumns {
		structure[i] = c.name + " " + c.typ
	}
	return b.insertSpans() + " SELECT * FROM file({path:String}, 'RowBinary', '" + strings.Join(structure, ", ") + "')"
}

// settlements groups the spans that carry settlement.id: a settlement lasts from its first
// span's start to its last span's end.
func (b builder) settlements(q SettlementQuery) stmt {
	var conds []string
	conds = append(conds, "mapContains(attrs, '"+SettlementAttr+"')")
	if q.From != 0 {
		conds = append(conds, "start_ns >= "+strconv.FormatInt(q.From, 10))
	}
	if q.To != 0 {
		conds = append(conds, "start_ns < "+strconv.FormatInt(q.To, 10))
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 10
	}
	return stmt{sql: "SELECT attrs['" + SettlementAttr + "'] AS sid, argMin(trace_id, start_ns), min(start_ns), max(end_ns)," +
		" argMin(service, start_ns), argMin(host, start_ns), argMin(pid, start_ns), count()" +
		" FROM " + b.spansTable() + " FINAL WHERE " + strings.Join(conds, " AND ") +
		" GROUP BY sid ORDER BY max(end_ns) - min(start_ns) DESC, sid LIMIT " + strconv.Itoa(limit)}
}

func appendSpan(b []byte, s *span.Span) []byte {
	b = appendString(b, s.TraceID)
	b = appendString(b, s.SpanID)
	b = appendString(b, s.ParentID)
	b = appendString(b, s.Name)
	b = appendString(b, s.Service)
	b = appendString(b, s.Host)
	b = binary.LittleEndian.AppendUint32(b, s.PID)
	b = binary.LittleEndian.AppendUint32(b, s.TID)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.StartNs))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.EndNs))
	b = appendString(b, s.Status)
	b = binary.AppendUvarint(b, uint64(len(s.Attrs)))
	for k, v := range s.Attrs {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	return b
}

func decodeSettlements(b []byte) ([]Settlement, error) {
	r := rowReader{b: b, intern: map[string]string{}}
	var out []Settlement
	for r.off < len(r.b) && r.err == nil {
		var s Settlement
		s.ID = r.str()
		s.TraceID = r.str()
		s.StartNs = int64(r.u64())
		s.EndNs = int64(r.u64())
		s.Service = r.lcStr()
		s.Host = r.lcStr()
		s.PID = r.u32()
		s.Spans = r.u64()
		if r.err == nil {
			out = append(out, s)
		}
	}
	return out, r.err
}
