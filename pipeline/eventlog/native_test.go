package eventlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNativeColumns(t *testing.T) {
	if nativeColumns != len(columns) {
		t.Fatalf("native encoder has %d columns, the table %d", nativeColumns, len(columns))
	}
	var nb nativeBlock
	nb.encode(fullEvents())
	// Every column's header names the column of the same index.
	for i, c := range nb.cols {
		if i == 0 {
			_, k1 := binary.Uvarint(c)
			_, k2 := binary.Uvarint(c[k1:])
			c = c[k1+k2:]
		}
		want := appendString(appendString(nil, columns[i].name), nativeTypes[i])
		if !bytes.HasPrefix(c, want) {
			t.Errorf("column %d starts %q, want %q", i, c[:min(len(c), len(want))], want)
		}
	}
}

// TestNativeRoundTrip has the engine read what writeNative wrote (in several blocks) and
// checks every field comes back.
func TestNativeRoundTrip(t *testing.T) {
	s := openEmbeddedTest(t, Options{}).(*embedded)
	defer func(n int) { nativeBlockRows = n }(nativeBlockRows)
	nativeBlockRows = 3
	want := append(fullEvents(), queryEvents()...)
	path := filepath.Join(t.TempDir(), "events.native")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeNative(f, want); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := s.events(context.Background(), stmt{
		sql:    "SELECT * FROM file({path:String}, 'Native', '" + nativeStructure + "')",
		params: []param{{"path", path}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpEvents); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestEmbeddedWidePartUpgrade: a table made before widePartSetting gets it on open.
func TestEmbeddedWidePartUpgrade(t *testing.T) {
	s := openEmbeddedTest(t, Options{}).(*embedded)
	ctx := context.Background()
	b := newBuilder(testDatabase())
	for _, sql := range []string{b.createDatabase(), strings.Replace(b.createTable(0), ", "+widePartSetting, "", 1)} {
		if err := s.exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	old, err := s.queryString(ctx, b.createTableQuery())
	if err != nil || strings.Contains(old, widePartName) {
		t.Fatalf("old table DDL = %q, %v", old, err)
	}
	s2 := openEmbeddedTest(t, Options{Database: b.db}).(*embedded)
	d, err := s2.tableDDL(ctx)
	if err != nil || !strings.Contains(d, widePartSetting) {
		t.Errorf("DDL after open lacks %q (%v):\n%s", widePartSetting, err, d)
	}
}
