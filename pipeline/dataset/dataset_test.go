package dataset

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/span"
)

func sample() Dataset {
	base := int64(1_764_500_000_000_000_000)
	var evs []event.Event
	for i := range 10_000 {
		e := event.Event{ID: uint64(i + 1), TsNs: base + int64(i)*1000, KtimeNs: uint64(base + int64(i)*1000), Node: "n1", PID: 42, TID: 43 + uint32(i%2),
			CPU: uint32(i % 2), Comm: "svc", Type: event.TypeWrite, Syscall: "write", DurNs: uint64(500 + i), FD: 7,
			Bytes: 4096, Ino: 99}
		if i%3 == 0 {
			e.Type, e.Syscall, e.FD, e.Bytes, e.Ino = event.TypeTCPSend, "", 0, 100, 0
			e.SAddr, e.DAddr, e.SPort, e.DPort = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), 1000, 5432
		}
		if i%7 == 0 {
			e.Type, e.Syscall, e.FD, e.Bytes, e.Ino, e.Args, e.Path = event.TypeSyscall, "openat", -1, 3, 0, []int64{-100, 1, 0}, "/var/lib/ledger.log"
			e.SAddr, e.DAddr, e.SPort, e.DPort = netip.Addr{}, netip.Addr{}, 0, 0
		}
		evs = append(evs, e)
	}
	spans := []span.Span{{TraceID: "t1", SpanID: "s1", Name: "settlement.process", Service: "svc", Host: "n1",
		PID: 42, TID: 43, StartNs: base, EndNs: base + int64(len(evs))*1000, Attrs: map[string]string{"settlement.id": "4821"}, Status: "error"}}
	return Dataset{Meta: Meta{Title: "test", Node: "n1"}, Spans: spans, Events: evs}
}

var eventOpts = cmpopts.EquateComparable(netip.Addr{})

func TestRoundTrip(t *testing.T) {
	d := sample()
	var b bytes.Buffer
	if err := Write(&b, d); err != nil {
		t.Fatal(err)
	}
	got, err := Read(&b)
	if err != nil {
		t.Fatal(err)
	}
	d.Meta.Events, d.Meta.Spans = len(d.Events), len(d.Spans)
	if diff := cmp.Diff(d, got, eventOpts, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestReadRejects(t *testing.T) {
	var good bytes.Buffer
	if err := Write(&good, sample()); err != nil {
		t.Fatal(err)
	}
	raw, _ := gunzip(good.Bytes())
	tests := map[string][]byte{
		"not gzip":    []byte("hello"),
		"bad header":  gz([]byte("kprobe-dataset 9\n")),
		"no metadata": gz([]byte(magic)),
		"truncated":   gz(raw[:len(raw)/2]),
	}
	want := map[string]string{"not gzip": "not gzip", "bad header": "bad header", "no metadata": "no metadata", "truncated": "truncated"}
	for name, in := range tests {
		_, err := Read(bytes.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), want[name]) {
			t.Errorf("%s: err = %v, want %q", name, err, want[name])
		}
	}
}

func gz(p []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(p)
	w.Close()
	return b.Bytes()
}

func gunzip(p []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(p))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_, err = b.ReadFrom(r)
	return b.Bytes(), err
}

func FuzzRead(f *testing.F) {
	var good bytes.Buffer
	d := sample()
	d.Events = d.Events[:20]
	Write(&good, d)
	raw, _ := gunzip(good.Bytes())
	f.Add(raw)
	f.Add([]byte(magic + "M\x02{}E\x05abcde"))
	f.Fuzz(func(t *testing.T, p []byte) {
		Read(bytes.NewReader(gz(p)))
	})
}

// The recorder's jsonl decodes into the events it encoded.
func TestReadJSONL(t *testing.T) {
	d := sample()
	var b []byte
	for i := range d.Events[:300] {
		b = event.AppendJSON(b, &d.Events[i])
		b = append(b, '\n')
	}
	got, err := ReadJSONL(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	want := d.Events[:300]
	for i := range want {
		want[i].KtimeNs = uint64(want[i].TsNs) // the jsonl carries no kernel clock
	}
	if diff := cmp.Diff(want, got, eventOpts, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{`{"type":"nope","id":"1"}`, `{"type":"read","id":"zz"}`, `{`, `{"type":"tcp_send","id":"1","saddr":"x"}`} {
		if _, err := ReadJSONL(strings.NewReader("\n" + bad + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("ReadJSONL(%s) = %v, want an error naming line 2", bad, err)
		}
	}
}

func FuzzReadJSONL(f *testing.F) {
	f.Add([]byte(`{"ts_ns":1,"id":"a","type":"read","pid":1}`))
	f.Add([]byte(`{"ts_ns":1,"id":"a","type":"tcp_recv","saddr":"::1","daddr":"10.0.0.1"}`))
	f.Fuzz(func(t *testing.T, p []byte) { ReadJSONL(bytes.NewReader(p)) })
}

// An import joins the events to their spans and writes both to the real embedded event
// log, losing none.
func TestImportIntoTheEmbeddedLog(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the ClickHouse engine (libchdb)")
	}
	if _, err := os.Stat(eventlog.LibraryPath()); err != nil {
		t.Skipf("no libchdb at %s (make chdb)", eventlog.LibraryPath())
	}
	ctx := context.Background()
	store, err := eventlog.OpenEmbedded(ctx, eventlog.EmbeddedDir(t.TempDir()), eventlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	d := sample()
	st, err := Import(ctx, store, d, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Written != uint64(len(d.Events)) || st.Correlator.JoinedTID != uint64(len(d.Events)/2) {
		t.Errorf("import stats %+v: want %d written, %d joined by tid", st, len(d.Events), len(d.Events)/2)
	}
	evs, err := store.Events(ctx, eventlog.Query{AttrKey: "settlement.id", AttrValue: "4821"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(d.Events)/2 {
		t.Errorf("%d events joined to settlement 4821, want %d", len(evs), len(d.Events)/2)
	}
}
