package eventlog

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestExpInsert(t *testing.T) {
	dir := requireEngine(t)
	s0, _ := OpenEmbedded(context.Background(), dir, Options{Database: "exp"})
	s := s0.(*embedded)
	q := func(name, sql string) time.Duration {
		start := time.Now()
		err := s.conn.query([]byte(sql), "RowBinary", nil, nil)
		if err != nil {
			fmt.Println(name, err)
		}
		return time.Since(start).Round(time.Millisecond)
	}
	exprs := make([]string, len(columns))
	for i, c := range columns {
		exprs[i] = lookupGen[c.name] + " AS " + c.name
	}
	sel := " SELECT " + strings.Join(exprs, ", ") + " FROM numbers(1000000)"
	q("src", "CREATE TABLE exp.src ENGINE=Memory AS"+sel)
	plain, codecs := "", ""
	for _, c := range columns {
		typ, _, _ := strings.Cut(c.typ, " CODEC")
		plain += c.name + " " + typ + ","
		codecs += c.name + " " + c.typ + ","
	}
	n := 0
	try := func(name, cols, engine string) {
		n++
		tbl := fmt.Sprintf("exp.t%d", n)
		q("create "+name, "CREATE TABLE "+tbl+" ("+strings.TrimSuffix(cols, ",")+") ENGINE="+engine)
		var ds []time.Duration
		for i := 0; i < 3; i++ {
			ds = append(ds, q("insert "+name, "INSERT INTO "+tbl+" SELECT * FROM exp.src"))
		}
		q("drop", "DROP TABLE "+tbl+" SYNC")
		fmt.Printf("%-20s %v\n", name, ds)
	}
	key := " ORDER BY (node, pid, ts_ns, id)"
	q("", "SYSTEM STOP MERGES")
	try("null", plain, "Null")
	try("plain", plain, "MergeTree"+key)
	try("codecs", codecs, "MergeTree"+key)
	try("replacing", plain, "ReplacingMergeTree"+key)
	try("partition", plain, "MergeTree PARTITION BY "+partitionExpr+key)
	try("full", codecs+"INDEX i1 trace_id TYPE bloom_filter(0.01) GRANULARITY 1, INDEX i2 span_id TYPE bloom_filter(0.01) GRANULARITY 1, INDEX i3 attrs['settlement.id'] TYPE bloom_filter(0.01) GRANULARITY 1, INDEX i4 mapValues(attrs) TYPE bloom_filter(0.01) GRANULARITY 1,", "ReplacingMergeTree PARTITION BY "+partitionExpr+key)
	try("replacing+codecs", codecs, "ReplacingMergeTree"+key)
	try("plain-str", strings.ReplaceAll(plain, "LowCardinality(String)", "String"), "MergeTree"+key)
}
