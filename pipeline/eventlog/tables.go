package eventlog

import (
	"fmt"
	"net/netip"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// Table is the name of the kernel event table inside Options.Database.
const Table = "kernel_events"

// SpansTable keeps the spans the engine received, so an investigation can start from a
// business object's own spans (its duration, trace and process) before drilling into
// events.
const SpansTable = "spans"

type ev = event.Event

// events is the kernel event table: every column, in table order, defined here only.
var events = newTable(Table,
	at("id", "UInt64", func(e *ev) *uint64 { return &e.ID }),
	at("ts_ns", "Int64 CODEC(Delta, ZSTD(1))", func(e *ev) *int64 { return &e.TsNs }),
	at("ktime_ns", "UInt64 CODEC(Delta, ZSTD(1))", func(e *ev) *uint64 { return &e.KtimeNs }),
	str("node", "LowCardinality(String)", func(e *ev) *string { return &e.Node }),
	at("pid", "UInt32", func(e *ev) *uint32 { return &e.PID }),
	at("tid", "UInt32", func(e *ev) *uint32 { return &e.TID }),
	at("cpu", "UInt32", func(e *ev) *uint32 { return &e.CPU }),
	str("comm", "LowCardinality(String)", func(e *ev) *string { return &e.Comm }),
	at("cgroup_id", "UInt64", func(e *ev) *uint64 { return &e.CgroupID }),
	// event.Type as a number, so new types need no ALTER.
	conv("type", "UInt8", func(e *ev) uint8 { return uint8(e.Type) }, func(e *ev, v uint8) { e.Type = event.Type(v) }),
	at("dur_ns", "UInt64", func(e *ev) *uint64 { return &e.DurNs }),
	str("syscall", "LowCardinality(String)", func(e *ev) *string { return &e.Syscall }),
	at("fd", "Int32", func(e *ev) *int32 { return &e.FD }),
	at("bytes", "Int64", func(e *ev) *int64 { return &e.Bytes }),
	at("errno", "Int32", func(e *ev) *int32 { return &e.Errno }),
	at("dev", "UInt64", func(e *ev) *uint64 { return &e.Dev }),
	at("ino", "UInt64", func(e *ev) *uint64 { return &e.Ino }),
	ipv6("saddr", "IPv6", func(e *ev) [16]byte { return addr16(e.SAddr) }, func(e *ev, v [16]byte) { e.SAddr = netip.AddrFrom16(v) }),
	ipv6("daddr", "IPv6", func(e *ev) [16]byte { return addr16(e.DAddr) }, func(e *ev, v [16]byte) { e.DAddr = netip.AddrFrom16(v) }),
	at("sport", "UInt16", func(e *ev) *uint16 { return &e.SPort }),
	at("dport", "UInt16", func(e *ev) *uint16 { return &e.DPort }),
	// IPv6 alone cannot tell 10.0.0.1 from ::ffff:10.0.0.1 (dual-stack sockets) or :: from
	// no address: bits 0-1 are saddr's family, bits 2-3 daddr's (0 none, 1 IPv4, 2 IPv6).
	// Rows are read column by column, so saddr and daddr are in place when this one is.
	conv("addr_family", "UInt8", addrFamilies, func(e *ev, fam uint8) {
		e.SAddr, e.DAddr = addrFrom(e.SAddr, fam&3), addrFrom(e.DAddr, fam>>2&3)
	}),
	at("preempted", "Bool", func(e *ev) *bool { return &e.Preempted }),
	at("next_pid", "UInt32", func(e *ev) *uint32 { return &e.NextPID }),
	at("next_tid", "UInt32", func(e *ev) *uint32 { return &e.NextTID }),
	str("next_comm", "LowCardinality(String)", func(e *ev) *string { return &e.NextComm }),
	at("waker_pid", "UInt32", func(e *ev) *uint32 { return &e.WakerPID }),
	at("waker_tid", "UInt32", func(e *ev) *uint32 { return &e.WakerTID }),
	at("runq_delay_ns", "UInt64", func(e *ev) *uint64 { return &e.RunqDelayNs }),
	at("addr", "UInt64", func(e *ev) *uint64 { return &e.Addr }),
	at("ip", "UInt64", func(e *ev) *uint64 { return &e.IP }),
	at("error_code", "UInt64", func(e *ev) *uint64 { return &e.ErrorCode }),
	at("kernel_fault", "Bool", func(e *ev) *bool { return &e.KernelFault }),
	blob("payload", "String CODEC(ZSTD(3))", func(e *ev) *[]byte { return &e.Payload }),
	str("trace_id", "String", func(e *ev) *string { return &e.TraceID }),
	str("span_id", "String", func(e *ev) *string { return &e.SpanID }),
	str("service", "LowCardinality(String)", func(e *ev) *string { return &e.Service }),
	str("span_name", "LowCardinality(String)", func(e *ev) *string { return &e.SpanName }),
	str("span_join", "LowCardinality(String)", func(e *ev) *string { return &e.Join }),
	// The flight recorder's syscall events (added after the first tables: an older
	// table gets them by ALTER, at its end; inserts and selects name their columns).
	// Six argument columns rather than an array: zero for every other event, they
	// compress to nothing.
	str("path", "String CODEC(ZSTD(1))", func(e *ev) *string { return &e.Path }),
	at("truncated", "UInt64", func(e *ev) *uint64 { return &e.Truncated }),
	argColumn(0), argColumn(1), argColumn(2), argColumn(3), argColumn(4), argColumn(5),
	// Last: the hand encoder (eventenc.go) writes the map's nested columns after all others.
	strMap("attrs", "Map(LowCardinality(String), String)", func(e *ev) *map[string]string { return &e.Attrs }),
)

// argColumn is the syscall argument i of a syscall event. Reading back, an event gets
// Args only as long as its last non-zero argument needs (other events get none).
func argColumn(i int) column[ev] {
	return conv(fmt.Sprintf("arg%d", i), "Int64",
		func(e *ev) int64 {
			if i < len(e.Args) {
				return e.Args[i]
			}
			return 0
		},
		func(e *ev, v int64) {
			if v == 0 && i >= len(e.Args) {
				return
			}
			for len(e.Args) <= i {
				e.Args = append(e.Args, 0)
			}
			e.Args[i] = v
		})
}

type sp = span.Span

// spans is the span table.
var spans = newTable(SpansTable,
	str("trace_id", "String", func(s *sp) *string { return &s.TraceID }),
	str("span_id", "String", func(s *sp) *string { return &s.SpanID }),
	str("parent_id", "String", func(s *sp) *string { return &s.ParentID }),
	str("name", "LowCardinality(String)", func(s *sp) *string { return &s.Name }),
	str("service", "LowCardinality(String)", func(s *sp) *string { return &s.Service }),
	str("host", "LowCardinality(String)", func(s *sp) *string { return &s.Host }),
	at("pid", "UInt32", func(s *sp) *uint32 { return &s.PID }),
	at("tid", "UInt32", func(s *sp) *uint32 { return &s.TID }),
	at("start_ns", "Int64", func(s *sp) *int64 { return &s.StartNs }),
	at("end_ns", "Int64", func(s *sp) *int64 { return &s.EndNs }),
	str("status", "LowCardinality(String)", func(s *sp) *string { return &s.Status }),
	strMap("attrs", "Map(LowCardinality(String), String)", func(s *sp) *map[string]string { return &s.Attrs }),
)

// SpanGroup is the spans that share one value of an attribute (settlement.id = 4821): one
// business object as its spans show it.
type SpanGroup struct {
	Value          string // the attribute's value
	TraceID        string // of the earliest span
	StartNs, EndNs int64  // the earliest start, the latest end
	Service, Host  string // of the earliest span
	PID            uint32 // of the earliest span
	Spans          uint64
	Errors         uint64 // spans whose status is span.StatusError
	OKs            uint64 // spans whose status is span.StatusOK
}

type sg = SpanGroup

// spanGroups is the result of SpanGroups. Aliases differ from the spans table's column
// names: ClickHouse would otherwise read the aggregate in the WHERE clause.
var spanGroups = newTable("",
	computed(str("", "String", func(g *sg) *string { return &g.Value }), "g_value", "attrs[{key:String}]"),
	computed(str("", "String", func(g *sg) *string { return &g.TraceID }), "g_trace_id", "argMin(trace_id, start_ns)"),
	computed(at("", "", func(g *sg) *int64 { return &g.StartNs }), "g_start_ns", "min(start_ns)"),
	computed(at("", "", func(g *sg) *int64 { return &g.EndNs }), "g_end_ns", "max(end_ns)"),
	computed(str("", "LowCardinality(String)", func(g *sg) *string { return &g.Service }), "g_service", "argMin(service, start_ns)"),
	computed(str("", "LowCardinality(String)", func(g *sg) *string { return &g.Host }), "g_host", "argMin(host, start_ns)"),
	computed(at("", "", func(g *sg) *uint32 { return &g.PID }), "g_pid", "argMin(pid, start_ns)"),
	computed(at("", "", func(g *sg) *uint64 { return &g.Spans }), "g_spans", "count()"),
	computed(at("", "", func(g *sg) *uint64 { return &g.Errors }), "g_errors", "countIf(status = '"+span.StatusError+"')"),
	computed(at("", "", func(g *sg) *uint64 { return &g.OKs }), "g_oks", "countIf(status = '"+span.StatusOK+"')"),
)

// TypeTotal is what the events of one type selected by a Query add up to.
type TypeTotal struct {
	Type    event.Type
	Events  uint64
	DurNs   uint64 // the sum of their DurNs
	FirstNs int64  // the earliest TsNs
	// Comm is the earliest event's command name.
	Comm string
}

type tt = TypeTotal

// typeTotals is the result of EventTotals.
var typeTotals = newTable("",
	conv("type", "UInt8", func(t *tt) uint8 { return uint8(t.Type) }, func(t *tt, v uint8) { t.Type = event.Type(v) }),
	computed(at("", "", func(t *tt) *uint64 { return &t.Events }), "t_events", "count()"),
	computed(at("", "", func(t *tt) *uint64 { return &t.DurNs }), "t_dur_ns", "sum(dur_ns)"),
	computed(at("", "", func(t *tt) *int64 { return &t.FirstNs }), "t_first_ns", "min(ts_ns)"),
	computed(str("", "LowCardinality(String)", func(t *tt) *string { return &t.Comm }), "t_comm", "argMin(comm, (ts_ns, id))"),
)

// ValueTotal is what EventTotalsByValue counts for one value of an attribute.
type ValueTotal struct {
	Value   string
	Events  uint64
	FirstNs int64 // the earliest TsNs
	// Comm is the earliest event's command name.
	Comm string
}

type vt = ValueTotal

// valueTotals is the result of EventTotalsByValue.
var valueTotals = newTable("",
	computed(str("", "String", func(t *vt) *string { return &t.Value }), "v_value", "attrs[{attr_key:String}]"),
	computed(at("", "", func(t *vt) *uint64 { return &t.Events }), "v_events", "uniqExact("+replacingKey+")"),
	computed(at("", "", func(t *vt) *int64 { return &t.FirstNs }), "v_first_ns", "min(ts_ns)"),
	computed(str("", "LowCardinality(String)", func(t *vt) *string { return &t.Comm }), "v_comm", "argMin(comm, (ts_ns, id))"),
)

// counts is the result of Count.
var counts = newTable("", computed(at("", "", func(n *uint64) *uint64 { return n }), "n", "count()"))

// texts is a one-string result (a table's definition, read back).
var texts = newTable("", str("v", "String", func(s *string) *string { return s }))

// computed names a column that a SELECT computes.
func computed[R any](c column[R], name, expr string) column[R] {
	c.name, c.expr = name, expr
	return c
}
