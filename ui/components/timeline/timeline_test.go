package timeline

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/ui/styles"
)

func TestCompute(t *testing.T) {
	ev := func(typ event.Type, ts, dur int64) event.Event {
		return event.Event{Type: typ, TsNs: ts, DurNs: uint64(dur)}
	}
	tests := []struct {
		name   string
		events []event.Event
		want   string
	}{
		{"nothing recorded is on CPU", nil, "██████████"},
		{"a read", []event.Event{ev(event.TypeRead, 200, 300)}, "██▒▒▒█████"},
		{"a blocking read is I/O, not off-CPU", []event.Event{ev(event.TypeRead, 0, 500), ev(event.TypeSchedSwitch, 100, 400)}, "▒▒▒▒▒█████"},
		{"off-CPU then network", []event.Event{ev(event.TypeSchedSwitch, 0, 300), ev(event.TypeTCPRecv, 700, 300)}, "···████≈≈≈"},
		{"a tiny event does not colour its cell", []event.Event{ev(event.TypeWrite, 510, 10)}, "██████████"},
		{"clipped to the window", []event.Event{ev(event.TypeWrite, -500, 700), ev(event.TypeTCPSend, 900, 5000)}, "▒▒███████≈"},
		{"page faults are on CPU", []event.Event{ev(event.TypePageFault, 0, 1000)}, "██████████"},
	}
	st := styles.Default()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compute(tt.events, 0, 1000, 10)
			if diff := cmp.Diff(tt.want, plain(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if got.View(&st) == "" {
				t.Error("empty view")
			}
		})
	}
}

func plain(s Strip) string {
	var b []byte
	for _, c := range s.Cells {
		b = append(b, glyphs[c]...)
	}
	return string(b)
}

func TestCaret(t *testing.T) {
	s := Compute(nil, 0, 1000, 10)
	for _, tt := range []struct {
		ts   int64
		want string
	}{{0, "^"}, {550, "     ^"}, {999, "         ^"}, {1000, ""}, {-1, ""}} {
		if got := s.Caret(tt.ts); got != tt.want {
			t.Errorf("Caret(%d) = %q, want %q", tt.ts, got, tt.want)
		}
	}
}
