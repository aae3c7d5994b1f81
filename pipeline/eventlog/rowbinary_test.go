package eventlog

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/event"
)

func TestRowBinaryRoundTrip(t *testing.T) {
	want := append(fullEvents(), queryEvents()...)
	var b []byte
	for i := range want {
		b = appendEvent(b, &want[i])
	}
	got, err := decodeEvents(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpEvents); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Every strict prefix is a truncated row: an error, never a panic or a short result.
	for n := 1; n < len(b); n += 7 {
		if evs, err := decodeEvents(b[:n]); err == nil && len(evs) != countRows(t, b, n) {
			t.Fatalf("prefix %d decoded to %d events without error", n, len(evs))
		}
	}
}

// countRows is how many whole rows the first n bytes of b hold.
func countRows(t *testing.T, b []byte, n int) int {
	t.Helper()
	r := rowReader{b: b, intern: map[string]string{}}
	rows := 0
	for r.off < n {
		var e event.Event
		r.event(&e)
		rows++
	}
	if r.off != n {
		return -1
	}
	return rows
}

func TestAddressFamilies(t *testing.T) {
	for _, s := range []string{"", "0.0.0.0", "10.0.0.1", "::", "::1", "::ffff:10.0.0.1", "2001:db8::1", "fe80::1"} {
		var a netip.Addr
		if s != "" {
			a = netip.MustParseAddr(s)
		}
		if got := addrFrom(addr16(a), addrFamily(a)); got != a {
			t.Errorf("%q: round trip gave %v", s, got)
		}
	}
}

func FuzzDecodeEvents(f *testing.F) {
	evs := fullEvents()
	var b []byte
	for i := range evs {
		b = appendEvent(b, &evs[i])
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeEvents(data)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to bytes that decode to the same events.
		var re []byte
		for i := range got {
			re = appendEvent(re, &got[i])
		}
		again, err := decodeEvents(re)
		if err != nil {
			t.Fatalf("re-encoded events do not decode: %v", err)
		}
		if diff := cmp.Diff(got, again, cmpEvents); diff != "" {
			t.Errorf("re-encode changed events (-first +second):\n%s", diff)
		}
	})
}
