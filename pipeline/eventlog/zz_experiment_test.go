package eventlog

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
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

func expTime(t *testing.T, s *embedded, name, sql string, reps int) {
	t.Helper()
	var best, total time.Duration
	for i := 0; i < reps; i++ {
		st := time.Now()
		expQuery(t, s, sql)
		d := time.Since(st)
		total += d
		if best == 0 || d < best {
			best = d
		}
	}
	t.Logf("%-45s best %6.1f ms  avg %6.1f ms  (%.0f krows/s best)", name, best.Seconds()*1e3, total.Seconds()*1e3/float64(reps), 100.0/best.Seconds())
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
