package eventlog

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// TestNativeStructure: what Go sends is each column's DDL type without LowCardinality
// (the INSERT converts) and without codecs (they stay with the table).
func TestNativeStructure(t *testing.T) {
	lc := regexp.MustCompile(`LowCardinality\(([^()]*)\)`)
	plain := func(typ string) string {
		typ, _, _ = strings.Cut(typ, " CODEC")
		return lc.ReplaceAllString(typ, "$1")
	}
	check := func(name string, cols []string, structure string) {
		t.Helper()
		if diff := cmp.Diff(strings.Join(cols, ", "), structure); diff != "" {
			t.Errorf("%s structure (-want +got):\n%s", name, diff)
		}
	}
	var want []string
	for _, c := range events.cols {
		want = append(want, c.name+" "+plain(c.typ))
	}
	check("events", want, events.structure())
	want = nil
	for _, c := range spans.cols {
		want = append(want, c.name+" "+plain(c.typ))
	}
	check("spans", want, spans.structure())
}

// encodeNative is what the embedded Insert writes: evs in blocks of nativeBlockRows.
func encodeNative(t testing.TB, evs []event.Event) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := (eventsOut{rowsOut[event.Event]{events, evs}}).writeNative(&out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// encodeColumns writes evs through the table's columns instead.
func encodeColumns(t testing.TB, evs []event.Event) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := (rowsOut[event.Event]{events, evs}).writeNative(&out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestEventEncoder: the hand-written encoder writes what the table's columns write, so
// it keeps the table's column order, names and types.
func TestEventEncoder(t *testing.T) {
	smallBlocks(t, 3)
	evs := append(fullEvents(), queryEvents()...)
	// Maps are written in Go's random order: compare bytes where no event has two keys.
	var oneKey []event.Event
	for _, e := range evs {
		if len(e.Attrs) <= 1 {
			oneKey = append(oneKey, e)
		}
	}
	if diff := cmp.Diff(encodeColumns(t, oneKey), encodeNative(t, oneKey)); diff != "" {
		t.Errorf("hand-written stream differs from the columns' (-columns +hand):\n%s", diff)
	}
	for name, b := range map[string][]byte{"hand": encodeNative(t, evs), "columns": encodeColumns(t, evs)} {
		got, err := decodeNative(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(evs, got, cmpEvents); diff != "" {
			t.Errorf("%s: round trip (-want +got):\n%s", name, diff)
		}
	}
}

func decodeNative(b []byte) ([]event.Event, error) {
	blk := events.block()
	defer events.release(blk)
	var out []event.Event
	err := readNative(b, &blk.frame, func() { out = blk.appendTo(out) })
	return out, err
}

func smallBlocks(t *testing.T, n int) {
	t.Helper()
	old := nativeBlockRows
	nativeBlockRows = n
	t.Cleanup(func() { nativeBlockRows = old })
}

// TestNativeCodec: what the encoder writes, the decoder reads back, block after block;
// a stream cut anywhere is an error unless it was cut between blocks.
func TestNativeCodec(t *testing.T) {
	smallBlocks(t, 3)
	want := append(fullEvents(), queryEvents()...)
	b := encodeNative(t, want)
	got, err := decodeNative(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpEvents); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Where each block ends, and how many events precede that point.
	ends := map[int]int{}
	for n := 3; n <= len(want); n += 3 {
		ends[len(encodeNative(t, want[:n]))] = n
	}
	for n := 0; n < len(b); n++ {
		evs, err := decodeNative(b[:n])
		rows, boundary := ends[n]
		switch {
		case n == 0 && (err != nil || len(evs) != 0):
			t.Fatalf("empty stream: %d events, %v", len(evs), err)
		case n > 0 && boundary && (err != nil || len(evs) != rows):
			t.Fatalf("cut after %d whole blocks: %d events, %v", rows/3, len(evs), err)
		case n > 0 && !boundary && err == nil:
			t.Fatalf("stream cut at byte %d of %d decoded to %d events without error", n, len(b), len(evs))
		}
	}
}

// TestNativeRoundTrip has the engine read what the encoder wrote (in several blocks) and
// answer in Native, and checks every field comes back.
func TestNativeRoundTrip(t *testing.T) {
	s := openEmbeddedTest(t, Options{})
	smallBlocks(t, 3)
	want := append(fullEvents(), queryEvents()...)
	path := filepath.Join(t.TempDir(), "events.native")
	if err := os.WriteFile(path, encodeNative(t, want), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := queryRows(context.Background(), s, events, stmt{
		sql:    "SELECT * FROM file({path:String}, 'Native', '" + events.structure() + "')",
		params: []param{{"path", path}},
	})
	if err != nil {
		t.Fatal(err)
	}
	// file() may read its blocks in parallel: the rows come back in any order.
	byID := func(a, b event.Event) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	}
	slices.SortStableFunc(want, byID)
	slices.SortStableFunc(got, byID)
	if diff := cmp.Diff(want, got, cmpEvents); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestSpanColumns: spans go through the span table's columns and back unchanged.
func TestSpanColumns(t *testing.T) {
	want := []span.Span{
		{TraceID: "t", SpanID: "s", ParentID: "p", Name: "settlement.process", Service: "svc", Host: "h", PID: 1, TID: 2,
			StartNs: -5, EndNs: t0, Status: span.StatusError, Attrs: map[string]string{"settlement.id": "4821", "": "é"}},
		{TraceID: "t2", SpanID: "s2"},
	}
	blk := spans.block()
	blk.put(want)
	var out bytes.Buffer
	if err := writeNative(proto.NewWriter(&out, new(proto.Buffer)), &blk.frame); err != nil {
		t.Fatal(err)
	}
	dec := spans.block()
	var got []span.Span
	if err := readNative(out.Bytes(), &dec.frame, func() { got = dec.appendTo(got) }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestAddressFamilies(t *testing.T) {
	for _, s := range []string{"", "0.0.0.0", "10.0.0.1", "::", "::1", "::ffff:10.0.0.1", "2001:db8::1", "fe80::1"} {
		var a netip.Addr
		if s != "" {
			a = netip.MustParseAddr(s)
		}
		if got := addrFrom(netip.AddrFrom16(addr16(a)), addrFamily(a)); got != a {
			t.Errorf("%q: round trip gave %v", s, got)
		}
	}
}

func FuzzReadNative(f *testing.F) {
	b := encodeNative(f, fullEvents())
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte{0x28, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeNative(data)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to bytes that decode to the same events.
		again, err := decodeNative(encodeNative(t, got))
		if err != nil {
			t.Fatalf("re-encoded events do not decode: %v", err)
		}
		if diff := cmp.Diff(got, again, cmpEvents); diff != "" {
			t.Errorf("re-encode changed events (-first +second):\n%s", diff)
		}
	})
}

// TestEmbeddedWidePartUpgrade: a table made before widePartSetting gets it on open.
func TestEmbeddedWidePartUpgrade(t *testing.T) {
	s := openEmbeddedTest(t, Options{})
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
	s2 := openEmbeddedTest(t, Options{Database: b.db})
	d, err := s2.tableDDL(ctx)
	if err != nil || !strings.Contains(d, widePartSetting) {
		t.Errorf("DDL after open lacks %q (%v):\n%s", widePartSetting, err, d)
	}
}
