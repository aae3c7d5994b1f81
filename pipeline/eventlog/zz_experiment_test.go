package eventlog

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"sort"
	"syscall"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
)

func expQuery(t *testing.T, s *embedded, sql string) []byte {
	t.Helper()
	var out []byte
	err := s.conn.query([]byte(sql), "RowBinary", nil, func(b []byte) error { out = append([]byte(nil), b...); return nil })
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

var expTruncate string

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func sysNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Stime.Nano())
}

func expTime(t *testing.T, s *embedded, name, sql string, reps int) {
	t.Helper()
	var walls, cpus, syss []float64
	for i := 0; i < reps; i++ {
		if expTruncate != "" {
			expQuery(t, s, "TRUNCATE TABLE "+expTruncate)
		}
		st, c0, s0 := time.Now(), cpuNow(), sysNow()
		expQuery(t, s, sql)
		walls = append(walls, time.Since(st).Seconds()*1e3)
		cpus = append(cpus, (cpuNow()-c0).Seconds()*1e3)
		syss = append(syss, (sysNow()-s0).Seconds()*1e3)
		if os.Getenv("EXP_V") != "" {
			t.Logf("  %s: wall %.1f cpu %.1f sys %.1f", name, walls[len(walls)-1], cpus[len(cpus)-1], syss[len(syss)-1])
		}
	}
	sort.Float64s(walls)
	sort.Float64s(cpus)
	sort.Float64s(syss)
	t.Logf("%-50s wall med %6.1f ms min %6.1f | cpu med %6.1f ms min %6.1f | sys med %5.1f", name, walls[reps/2], walls[0], cpus[reps/2], cpus[0], syss[reps/2])
}

func TestZZNativeDump(t *testing.T) {
	if os.Getenv("EXP") == "" {
		t.Skip()
	}
	s0, err := OpenEmbedded(context.Background(), requireEngine(t), Options{Database: "exp"})
	if err != nil {
		t.Fatal(err)
	}
	defer s0.Close()
	s := s0.(*embedded)
	var out []byte
	err = s.conn.query([]byte(os.Getenv("EXP_SQL")), "Native", nil, func(b []byte) error { out = append([]byte(nil), b...); return nil })
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(hex.Dump(out))
}

func TestZZExperiment(t *testing.T) {
	if os.Getenv("EXP") == "" {
		t.Skip()
	}
	ctx := context.Background()
	s0, err := OpenEmbedded(ctx, requireEngine(t), Options{Database: "exp"})
	if err != nil {
		t.Fatal(err)
	}
	defer s0.Close()
	s := s0.(*embedded)
	if err := s.Insert(ctx, benchEvents(100_000, 0)); err != nil {
		t.Fatal(err)
	}
	dir := "/tmp/exp"
	tbl := s.b.table
	structure := make([]string, len(columns))
	plain := make([]string, len(columns))
	for i, c := range columns {
		typ, _, _ := strings.Cut(c.typ, " CODEC")
		structure[i] = c.name + " " + typ
		p := strings.ReplaceAll(typ, "LowCardinality(String)", "String")
		plain[i] = c.name + " " + p
	}
	casts := make([]string, len(columns))
	for i, c := range columns {
		p := strings.SplitN(plain[i], " ", 2)[1]
		casts[i] = "CAST(" + c.name + ", '" + p + "') AS " + c.name
	}
	for _, f := range []string{"rb", "nat", "natplain"} {
		os.Remove(dir + "/" + f)
	}
	expQuery(t, s, "INSERT INTO FUNCTION file('"+dir+"/rb', 'RowBinary') SELECT "+columnList+" FROM "+tbl)
	expQuery(t, s, "INSERT INTO FUNCTION file('"+dir+"/nat', 'Native') SELECT "+columnList+" FROM "+tbl)
	expQuery(t, s, "INSERT INTO FUNCTION file('"+dir+"/natplain', 'Native') SELECT "+strings.Join(casts, ", ")+" FROM "+tbl)
	for _, f := range []string{"rb", "nat", "natplain"} {
		fi, _ := os.Stat(dir + "/" + f)
		t.Logf("%s: %d bytes", f, fi.Size())
	}
	rb := "file('" + dir + "/rb', 'RowBinary', '" + strings.Join(structure, ", ") + "')"
	nat := "file('" + dir + "/nat', 'Native')"
	natplain := "file('" + dir + "/natplain', 'Native')"
	const reps = 5
	// read only
	for _, src := range []struct{ n, f string }{{"rb", rb}, {"nat", nat}, {"natplain", natplain}} {
		expTime(t, s, "read sum(cityHash64(*)) "+src.n, "SELECT sum(cityHash64(*)) FROM "+src.f, reps)
	}
	// targets
	ddl := s.b.createTable(0)
	mk := func(name, ddl string) string {
		full := "exp." + name
		expQuery(t, s, "DROP TABLE IF EXISTS "+full)
		expQuery(t, s, strings.Replace(ddl, tbl, full, 1))
		return full
	}
	tFull := mk("t_full", ddl)
	noIdx := ddl[:strings.Index(ddl, "    INDEX")] + ")" + ddl[strings.Index(ddl, "\nENGINE"):]
	noIdx = strings.Replace(noIdx, ",\n)", "\n)", 1)
	tNoIdx := mk("t_noidx", noIdx)
	noBloomSettle := strings.Replace(ddl, "    INDEX idx_attr_values mapValues(attrs) TYPE bloom_filter(0.01) GRANULARITY 1,\n", "", 1)
	tNoAttrVals := mk("t_noattrvals", noBloomSettle)
	noCodec := strings.NewReplacer(" CODEC(Delta, ZSTD(1))", "", " CODEC(ZSTD(3))", "").Replace(ddl)
	tNoCodec := mk("t_nocodec", noCodec)
	mt := strings.Replace(ddl, "ReplacingMergeTree", "MergeTree", 1)
	tMT := mk("t_mt", mt)
	tNull := mk("t_null", noIdx[:strings.Index(noIdx, "\nENGINE")]+"\nENGINE = Null")
	for _, tt := range []struct{ n, t string }{{"full", tFull}, {"null", tNull}, {"noidx", tNoIdx}, {"noattrvals", tNoAttrVals}, {"nocodec", tNoCodec}, {"plainMT", tMT}} {
		for _, src := range []struct{ n, f string }{{"rb", rb}, {"nat", nat}, {"natplain", natplain}} {
			expTime(t, s, tt.n+" <- "+src.n, "INSERT INTO "+tt.t+" ("+columnList+") SELECT * FROM "+src.f, reps)
		}
	}
	for _, set := range []string{"max_insert_threads=2", "max_threads=1", "max_threads=2", "input_format_parallel_parsing=0", "min_insert_block_size_rows=1000000", "max_insert_block_size=1048576", "optimize_on_insert=1"} {
		expTime(t, s, "full <- nat "+set, "INSERT INTO "+tFull+" ("+columnList+") SELECT * FROM "+nat+" SETTINGS "+set, reps)
	}
}

func TestZZPhases(t *testing.T) {
	if os.Getenv("EXP") == "" {
		t.Skip()
	}
	ctx := context.Background()
	s0, err := OpenEmbedded(ctx, requireEngine(t), Options{Database: "exp2"})
	if err != nil {
		t.Fatal(err)
	}
	defer s0.Close()
	s := s0.(*embedded)
	batches := [][]event.Event{benchEvents(100_000, 0), benchEvents(100_000, 1)}
	sql := s.insertSQL
	if q := os.Getenv("EXP_INSERT"); q != "" {
		sql = s.b.insert() + " " + q
	}
	if os.Getenv("EXP_STOP") != "" {
		expQuery(t, s, "SYSTEM STOP MERGES")
		defer expQuery(t, s, "SYSTEM START MERGES")
	}
	for i := 0; i < 10; i++ {
		t0 := time.Now()
		nb := nativeBlocks.Get().(*nativeBlock)
		bt := batches[i%2]
		if os.Getenv("EXP_ONE") != "" {
			bt = batches[0]
		}
		nb.encode(bt)
		t1 := time.Now()
		f, _ := os.CreateTemp(s.spool, "x-*")
		nb.writeTo(f)
		f.Close()
		nativeBlocks.Put(nb)
		if os.Getenv("EXP_TRUNC") != "" {
			expQuery(t, s, "TRUNCATE TABLE "+s.b.table)
		}
		t2 := time.Now()
		if err := s.conn.query([]byte(sql), "RowBinary", []param{{"path", f.Name()}}, nil); err != nil {
			t.Fatal(err)
		}
		t3 := time.Now()
		os.Remove(f.Name())
		t.Logf("encode %5.1f ms write %5.1f ms query %6.1f ms", t1.Sub(t0).Seconds()*1e3, t2.Sub(t1).Seconds()*1e3, t3.Sub(t2).Seconds()*1e3)
	}
}

func TestZZTargets(t *testing.T) {
	if os.Getenv("EXP") == "" {
		t.Skip()
	}
	ctx := context.Background()
	s0, err := OpenEmbedded(ctx, requireEngine(t), Options{Database: "exp3"})
	if err != nil {
		t.Fatal(err)
	}
	defer s0.Close()
	s := s0.(*embedded)
	evs := benchEvents(100_000, 0)
	write := func(name string, evs []event.Event) string {
		f, _ := os.Create("/tmp/exp/" + name)
		writeNative(f, evs)
		f.Close()
		return "file('/tmp/exp/" + name + "', 'Native', '" + nativeStructure + "')"
	}
	unsorted := write("go_unsorted", evs)
	sorted := append([]event.Event(nil), evs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := &sorted[i], &sorted[j]
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		if a.PID != b.PID {
			return a.PID < b.PID
		}
		if a.TsNs != b.TsNs {
			return a.TsNs < b.TsNs
		}
		return a.ID < b.ID
	})
	sortedF := write("go_sorted", sorted)
	tbl := s.b.table
	ddl := s.b.createTable(0)
	mk := func(name, ddl string) string {
		full := "exp3." + name
		expQuery(t, s, "DROP TABLE IF EXISTS "+full)
		expQuery(t, s, strings.Replace(ddl, tbl, full, 1))
		return full
	}
	idx := []string{
		"    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1,\n",
		"    INDEX idx_span_id span_id TYPE bloom_filter(0.01) GRANULARITY 1,\n",
		"    INDEX idx_settlement attrs['" + SettlementAttr + "'] TYPE bloom_filter(0.01) GRANULARITY 1,\n",
		"    INDEX idx_attr_values mapValues(attrs) TYPE bloom_filter(0.01) GRANULARITY 1,\n",
		"    INDEX idx_ts ts_ns TYPE minmax GRANULARITY 1,\n",
		"    INDEX idx_dur dur_ns TYPE minmax GRANULARITY 1\n",
	}
	noIdx := ddl
	for _, x := range idx {
		noIdx = strings.Replace(noIdx, x, "", 1)
	}
	noIdx = strings.Replace(noIdx, "Map(LowCardinality(String), String),\n)", "Map(LowCardinality(String), String)\n)", 1)
	targets := []struct{ n, t string }{
		{"full", mk("t_full", ddl)},
		{"null", mk("t_null", noIdx[:strings.Index(noIdx, "\nENGINE")]+"\nENGINE = Null")},
		{"noidx", mk("t_noidx", noIdx)},
	}
	for i, x := range idx[:4] {
		targets = append(targets, struct{ n, t string }{"no " + strings.Fields(x)[1], mk(fmt.Sprintf("t_no%d", i), strings.Replace(ddl, x, "", 1))})
	}
	targets = append(targets,
		struct{ n, t string }{"nocodec", mk("t_nocodec", strings.NewReplacer(" CODEC(Delta, ZSTD(1))", "", " CODEC(ZSTD(3))", "").Replace(ddl))},
		struct{ n, t string }{"noLC", mk("t_nolc", strings.ReplaceAll(ddl, "LowCardinality(String)", "String"))},
		struct{ n, t string }{"noidx+nocodec", mk("t_bare", strings.NewReplacer(" CODEC(Delta, ZSTD(1))", "", " CODEC(ZSTD(3))", "").Replace(noIdx))},
	)
	const reps = 9
	expQuery(t, s, "SYSTEM STOP MERGES")
	defer expQuery(t, s, "SYSTEM START MERGES")
	if os.Getenv("EXP_V") != "" {
		targets = targets[:1]
	}
	for _, tt := range targets {
		expTruncate = tt.t
		if tt.n == "null" {
			expTruncate = ""
		}
		for _, src := range []struct{ n, f string }{{"unsorted", unsorted}, {"sorted", sortedF}} {
			expTime(t, s, tt.n+" <- "+src.n, "INSERT INTO "+tt.t+" ("+columnList+") SELECT * FROM "+src.f, reps)
		}
	}
	expTruncate = targets[0].t
	f, _ := os.Create("/tmp/exp/go_2blocks")
	nb := new(nativeBlock)
	nb.encode(evs[:50000])
	nb.writeTo(f)
	nb.encode(evs[50000:])
	nb.writeTo(f)
	f.Close()
	two := "file('/tmp/exp/go_2blocks', 'Native', '" + nativeStructure + "')"
	expTime(t, s, "full <- 2blocks", "INSERT INTO "+targets[0].t+" ("+columnList+") SELECT * FROM "+two, reps)
	expTime(t, s, "full <- 2blocks max_insert_threads=2", "INSERT INTO "+targets[0].t+" ("+columnList+") SELECT * FROM "+two+" SETTINGS max_insert_threads=2", reps)
	expTime(t, s, "full <- 2blocks max_insert_threads=2 min_insert_block_size_rows=50000", "INSERT INTO "+targets[0].t+" ("+columnList+") SELECT * FROM "+two+" SETTINGS max_insert_threads=2, min_insert_block_size_rows=50000", reps)
	expTime(t, s, "read unsorted", "SELECT sum(cityHash64(*)) FROM "+unsorted, reps)
	expTime(t, s, "sort unsorted", "SELECT * FROM "+unsorted+" ORDER BY node, pid, ts_ns, id FORMAT Null", reps)
	for _, set := range []string{"max_insert_threads=2", "max_threads=1", "max_threads=2", "input_format_parallel_parsing=0", "min_insert_block_size_rows=1000000", "max_insert_block_size=1048576", "optimize_on_insert=1", "async_insert=1", "min_compress_block_size=1048576", "max_compress_block_size=4194304"} {
		expTime(t, s, "full <- unsorted "+set, "INSERT INTO "+targets[0].t+" ("+columnList+") SELECT * FROM "+unsorted+" SETTINGS "+set, reps)
	}
}

func TestZZInterleaved(t *testing.T) {
	if os.Getenv("EXP") == "" {
		t.Skip()
	}
	ctx := context.Background()
	s0, err := OpenEmbedded(ctx, requireEngine(t), Options{Database: "exp4"})
	if err != nil {
		t.Fatal(err)
	}
	defer s0.Close()
	s := s0.(*embedded)
	evs := benchEvents(100_000, 0)
	f, _ := os.Create("/tmp/exp/go_unsorted")
	writeNative(f, evs)
	f.Close()
	src := "file('/tmp/exp/go_unsorted', 'Native', '" + nativeStructure + "')"
	tbl := s.b.table
	ddl := s.b.createTable(0)
	mk := func(name, ddl string) string {
		full := "exp4." + name
		expQuery(t, s, "DROP TABLE IF EXISTS "+full)
		expQuery(t, s, strings.Replace(ddl, tbl, full, 1))
		return full
	}
	idx := []string{
		"    INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 1,\n",
		"    INDEX idx_span_id span_id TYPE bloom_filter(0.01) GRANULARITY 1,\n",
		"    INDEX idx_settlement attrs['" + SettlementAttr + "'] TYPE bloom_filter(0.01) GRANULARITY 1,\n",
		"    INDEX idx_attr_values mapValues(attrs) TYPE bloom_filter(0.01) GRANULARITY 1,\n",
		"    INDEX idx_ts ts_ns TYPE minmax GRANULARITY 1,\n",
		"    INDEX idx_dur dur_ns TYPE minmax GRANULARITY 1\n",
	}
	noIdx := ddl
	for _, x := range idx {
		noIdx = strings.Replace(noIdx, x, "", 1)
	}
	noIdx = strings.Replace(noIdx, "Map(LowCardinality(String), String),\n)", "Map(LowCardinality(String), String)\n)", 1)
	nocodec := strings.NewReplacer(" CODEC(Delta, ZSTD(1))", "", " CODEC(ZSTD(3))", "")
	type target struct {
		n, t, sql string
		cpu        []float64
	}
	var targets []*target
	add := func(n, t, settings string) {
		sql := "INSERT INTO " + t + " (" + columnList + ") SELECT * FROM " + src
		if settings != "" {
			sql += " SETTINGS " + settings
		}
		targets = append(targets, &target{n: n, t: t, sql: sql})
	}
	full := mk("t_full", ddl)
	add("full", full, "")
	add("null", mk("t_null", noIdx[:strings.Index(noIdx, "\nENGINE")]+"\nENGINE = Null"), "")
	add("noidx", mk("t_noidx", noIdx), "")
	add("noidx+nocodec", mk("t_bare", nocodec.Replace(noIdx)), "")
	add("nocodec", mk("t_nocodec", nocodec.Replace(ddl)), "")
	add("noLC", mk("t_nolc", strings.ReplaceAll(ddl, "LowCardinality(String)", "String")), "")
	add("no bloom", mk("t_nobloom", strings.Replace(strings.Replace(strings.Replace(strings.Replace(ddl, idx[0], "", 1), idx[1], "", 1), idx[2], "", 1), idx[3], "", 1)), "")
	for i, x := range idx[:4] {
		add("no "+strings.Fields(x)[1], mk(fmt.Sprintf("t_no%d", i), strings.Replace(ddl, x, "", 1)), "")
	}
	add("MergeTree", mk("t_mt", strings.Replace(ddl, "ReplacingMergeTree", "MergeTree", 1)), "")
	for _, set := range strings.Split(os.Getenv("EXP_SETTINGS"), ";") {
		if set != "" {
			add("full "+set, full, set)
		}
	}
	if only := os.Getenv("EXP_ONLY"); only != "" {
		var sel []*target
		for _, n := range strings.Split(only, ",") {
			for _, tg := range targets {
				if tg.n == n {
					sel = append(sel, tg)
				}
			}
		}
		targets = sel
	}
	expQuery(t, s, "SYSTEM STOP MERGES")
	defer expQuery(t, s, "SYSTEM START MERGES")
	reps := 15
	for r := 0; r < reps; r++ {
		for _, tg := range targets {
			if tg.n != "null" && !strings.HasPrefix(tg.n, "full ") {
				expQuery(t, s, "TRUNCATE TABLE "+tg.t)
			}
			c0 := cpuNow()
			expQuery(t, s, tg.sql)
			tg.cpu = append(tg.cpu, (cpuNow()-c0).Seconds()*1e3)
		}
	}
	for _, tg := range targets {
		sort.Float64s(tg.cpu)
		t.Logf("%-40s cpu ms: med %6.1f  min %6.1f  p25 %6.1f", tg.n, tg.cpu[reps/2], tg.cpu[0], tg.cpu[reps/4])
	}
}
