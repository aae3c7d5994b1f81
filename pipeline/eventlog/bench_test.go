package eventlog

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
)

// Run with: go test -run '^$' -bench Embedded ./pipeline/eventlog/
// (the 10 M-row lookup table is built only when BenchmarkEmbeddedLookup runs).

func openBench(b *testing.B, db string) *Log {
	b.Helper()
	s, err := OpenEmbedded(context.Background(), requireEngine(b), Options{Database: db})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// chdb is the embedded log's connection, for statements outside the Log's methods.
func chdb(s *Log) *chdbConn { return s.be.(*embedded).conn }

// benchEvents is a batch shaped like a recorder's: mostly syscalls and scheduler events
// from a few dozen processes, some with payloads and business keys.
func benchEvents(n int, seq int) []event.Event {
	evs := make([]event.Event, n)
	payload := []byte("POST /settle HTTP/1.1\r\nHost: ledger\r\n\r\n{\"id\":4821}\x00\x01")
	for i := range evs {
		k := seq*n + i
		e := &evs[i]
		*e = event.Event{
			ID: uint64(k) * 0x9e3779b97f4a7c15, TsNs: t0 + int64(k)*1000, KtimeNs: uint64(k) * 1000,
			Node: "node-1", PID: uint32(1000 + i%50), TID: uint32(2000 + i%200), CPU: uint32(i % 2),
			Comm: "settle-svc", CgroupID: 12345, Type: event.Types()[i%6], DurNs: uint64(i%997) * 1000,
		}
		switch e.Type {
		case event.TypeRead, event.TypeWrite:
			e.Syscall, e.FD, e.Bytes = "read", 7, int64(len(payload))
			if i%4 == 0 {
				e.Payload = payload
			}
		case event.TypeTCPSend, event.TypeTCPRecv:
			e.SAddr, e.DAddr, e.SPort, e.DPort = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), 40000, 5432
		case event.TypeSchedSwitch:
			e.NextPID, e.NextComm, e.RunqDelayNs = 1, "kworker/0:1", 5000
		case event.TypePageFault:
			e.Addr, e.IP, e.ErrorCode = 0x7fff0000, 0x401000, 6
		}
		if i%3 == 0 {
			e.TraceID, e.SpanID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
			e.Service, e.SpanName, e.Join = "settlement", "POST /settle", "tid"
			e.Attrs = map[string]string{"settlement.id": strconv.Itoa(k % 5000)}
		}
	}
	return evs
}

// sqlString quotes s as a ClickHouse string literal: the naive path's escaping.
func sqlString(sb *strings.Builder, s string) {
	sb.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'' || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(sb, "\\x%02x", c)
		default:
			sb.WriteByte(c)
		}
	}
	sb.WriteByte('\'')
}

// insertValues is the naive alternative: one INSERT ... VALUES statement of literals,
// written from the values the server driver would be given.
func insertValues(s *Log, evs []event.Event) error {
	blk := events.block()
	defer events.release(blk)
	blk.put(evs)
	var sb strings.Builder
	sb.WriteString(s.b.insertEvents() + " VALUES ")
	for i := range len(evs) {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		for j, f := range blk.fields {
			if j > 0 {
				sb.WriteByte(',')
			}
			switch v := f.value(i).(type) {
			case string:
				sqlString(&sb, v)
			case [16]byte:
				sqlString(&sb, netip.AddrFrom16(v).String())
			case bool:
				sb.WriteString(strconv.FormatBool(v))
			case map[string]string:
				sb.WriteByte('{')
				first := true
				for k, v := range v {
					if !first {
						sb.WriteByte(',')
					}
					first = false
					sqlString(&sb, k)
					sb.WriteByte(':')
					sqlString(&sb, v)
				}
				sb.WriteByte('}')
			default:
				fmt.Fprint(&sb, v) // numbers
			}
		}
		sb.WriteByte(')')
	}
	return chdb(s).query([]byte(sb.String()), "Native", nil, nil)
}

// BenchmarkEmbeddedInsert compares Insert (a Native spool file into Compact parts) with the
// paths it replaced, side by side in one run:
//
//	go test -run '^$' -bench EmbeddedInsert -benchtime 5x -count 3 ./pipeline/eventlog/
//
// native-wide is Insert into Wide parts (the engine's default for a 100k-row insert,
// widePartSetting's effect alone); values-baseline is one INSERT ... VALUES statement.
// (The first Insert, a RowBinary spool file into Wide parts, made 0.29 M rows/s in the
// same runs that gave Insert 1.27 M: see BENCHMARKS.md.)
// cpu-ms/op is the process's CPU time per batch, engine threads included: steadier than
// ns/op when other work shares the machine.
func BenchmarkEmbeddedInsert(b *testing.B) {
	const batch = 100_000
	ctx := context.Background()
	for _, m := range []struct {
		name   string
		wide   bool // Wide parts, as before widePartSetting
		insert func(s *Log, evs []event.Event) error
	}{
		{"Insert", false, func(s *Log, evs []event.Event) error { return s.Insert(ctx, evs) }},
		{"native-wide", true, func(s *Log, evs []event.Event) error { return s.Insert(ctx, evs) }},
		{"values-baseline", true, insertValues},
	} {
		b.Run(m.name, func(b *testing.B) {
			s := openBench(b, "bench_insert_"+strings.ReplaceAll(m.name, "-", "_"))
			if m.wide {
				// 10 MiB is the engine's default: a 100k-row insert (about 25 MB before
				// compression) becomes a Wide part.
				if err := s.exec(ctx, "ALTER TABLE "+s.b.table+" MODIFY SETTING "+widePartName+" = 10485760"); err != nil {
					b.Fatal(err)
				}
			}
			batches := [][]event.Event{benchEvents(batch, 0), benchEvents(batch, 1)}
			b.ReportAllocs()
			cpu0 := processCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := m.insert(s, batches[i%2]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric((processCPU()-cpu0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
			b.StopTimer()
			// Two distinct batches, re-inserted: the log holds each once.
			n, err := s.Count(ctx, Query{})
			if err != nil || (n != 2*batch && (b.N >= 2 || n != batch)) {
				b.Fatalf("Count = %d, %v; want %d", n, err, 2*batch)
			}
		})
	}
}

// processCPU is the CPU time the process has used (user and system, all threads).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const (
	lookupRows  = 10_000_000
	lookupNodes = 2
	lookupPIDs  = 50
	lookupStep  = 10_000 // ns between events: 10 M rows span 100 s
)

var lookupOnce sync.Once

// lookupGen fills the lookup table with the engine's own generator. Every column is
// listed, in table order, so a schema change that forgets it fails here.
var lookupGen = map[string]string{
	"id":            "cityHash64(number)",
	"ts_ns":         fmt.Sprintf("toInt64(%d + number * %d)", t0, lookupStep),
	"ktime_ns":      fmt.Sprintf("number * %d", lookupStep),
	"node":          fmt.Sprintf("concat('node-', toString(number %% %d))", lookupNodes),
	"pid":           fmt.Sprintf("toUInt32(1000 + intDiv(number, %d) %% %d)", lookupNodes, lookupPIDs),
	"tid":           "toUInt32(2000 + number % 200)",
	"cpu":           "toUInt32(number % 2)",
	"comm":          "'settle-svc'",
	"cgroup_id":     "12345",
	"type":          "toUInt8(1 + number % 6)",
	"dur_ns":        "cityHash64(number, 1) % 5000000",
	"syscall":       "if(number % 6 < 2, 'read', '')",
	"fd":            "toInt32(7)",
	"bytes":         "toInt64(number % 4096)",
	"errno":         "toInt32(0)",
	"dev":           "0",
	"ino":           "0",
	"saddr":         "toIPv6('::ffff:10.0.0.1')",
	"daddr":         "toIPv6('::ffff:10.0.0.2')",
	"sport":         "toUInt16(40000)",
	"dport":         "toUInt16(5432)",
	"addr_family":   "toUInt8(5)",
	"preempted":     "number % 7 = 0",
	"next_pid":      "0",
	"next_tid":      "0",
	"next_comm":     "''",
	"waker_pid":     "0",
	"waker_tid":     "0",
	"runq_delay_ns": "number % 10000",
	"addr":          "0",
	"ip":            "0",
	"error_code":    "0",
	"kernel_fault":  "false",
	"payload":       "if(number % 24 = 0, concat('GET /ledger/', toString(number), '\\0\\x01'), '')",
	"trace_id":      "if(number % 3 = 0, hex(cityHash64(intDiv(number, 300))), '')",
	"span_id":       "if(number % 3 = 0, hex(cityHash64(intDiv(number, 30))), '')",
	"service":       "if(number % 3 = 0, 'settlement', '')",
	"span_name":     "if(number % 3 = 0, 'POST /settle', '')",
	"span_join":     "if(number % 3 = 0, 'tid', '')",
	"attrs":         "if(number % 3 = 0, map('settlement.id', toString(intDiv(number, 3000))), map())",
}

func lookupStore(b *testing.B) *Log {
	b.Helper()
	s := openBench(b, "bench_lookup")
	lookupOnce.Do(func() {
		ctx := context.Background()
		if n, err := s.Count(ctx, Query{}); err != nil || n == lookupRows {
			return
		}
		exprs := make([]string, len(events.cols))
		for i, c := range events.cols {
			e, ok := lookupGen[c.name]
			if !ok {
				b.Fatalf("lookupGen lacks column %s", c.name)
			}
			exprs[i] = e + " AS " + c.name
		}
		start := time.Now()
		sql := s.b.insertEvents() + " SELECT " + strings.Join(exprs, ", ") + fmt.Sprintf(" FROM numbers(%d)", lookupRows)
		if err := chdb(s).query([]byte(sql), "Native", nil, nil); err != nil {
			b.Fatalf("generating %d rows: %v", lookupRows, err)
		}
		b.Logf("generated %d rows in %v", lookupRows, time.Since(start).Round(time.Millisecond))
		// Measure the steady state, not the minutes of background merging right after a
		// 10 M-row burst: merge the parts now, as the background merges eventually would.
		start = time.Now()
		if err := chdb(s).query([]byte("OPTIMIZE TABLE "+s.b.table+" FINAL"), "Native", nil, nil); err != nil {
			b.Fatalf("merging: %v", err)
		}
		b.Logf("merged in %v", time.Since(start).Round(time.Millisecond))
	})
	return s
}

func BenchmarkEmbeddedLookup(b *testing.B) {
	s := lookupStore(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, b.N)
	rows := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		from := t0 + rng.Int64N(99)*1_000_000_000
		q := Query{
			Node: fmt.Sprintf("node-%d", rng.IntN(lookupNodes)), PID: uint32(1000 + rng.IntN(lookupPIDs)),
			From: from, To: from + 1_000_000_000,
		}
		start := time.Now()
		evs, err := s.Events(ctx, q)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		rows += len(evs)
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
}

// BenchmarkNativeEncode is Insert's Go side alone: encoding a 100k-event batch, by the
// hand-written encoder Insert uses and through the table's ch-go columns (the baseline
// that keeps it: see eventenc.go).
func BenchmarkNativeEncode(b *testing.B) {
	evs := benchEvents(100_000, 0)
	for _, m := range []struct {
		name string
		out  outgoing
	}{
		{"hand", eventsOut{rowsOut[event.Event]{events, evs}}},
		{"columns", rowsOut[event.Event]{events, evs}},
	} {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := processCPU()
			for b.Loop() {
				if err := m.out.writeNative(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric((processCPU()-cpu0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkDecode is a query's Go side alone: decoding 10k events the engine answered in
// Native (through the table's ch-go columns).
func BenchmarkDecode(b *testing.B) {
	evs := benchEvents(10_000, 0)
	data := encodeNative(b, evs)
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		got, err := decodeNative(data)
		if err != nil || len(got) != len(evs) {
			b.Fatalf("decoded %d events, %v", len(got), err)
		}
	}
	b.ReportMetric((processCPU()-cpu0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "rows/s")
}
