package eventtable

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/google/go-cmp/cmp/cmpopts"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/ui/keymap"
	"github.com/kprobe/kprobe/ui/styles"
)

func events(n int, seed uint64) []event.Event {
	r := rand.New(rand.NewPCG(seed, 1))
	types := event.Types()
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = event.Event{ID: uint64(i + 1), TsNs: int64(i) * 1000, PID: uint32(100 + r.IntN(3)), TID: uint32(200 + r.IntN(5)),
			CPU: uint32(r.IntN(4)), Type: types[r.IntN(len(types))], DurNs: uint64(r.IntN(5000)), FD: int32(r.IntN(8))}
	}
	return evs
}

func newTable(evs []event.Event) *Table {
	st, km := styles.Default(), keymap.Default()
	t := New(&st, &km)
	t.SetSize(120, 20)
	t.SetEvents(evs, nil, 0)
	return t
}

func ids(t *Table) []uint64 {
	out := make([]uint64, len(t.view))
	for i, v := range t.view {
		out[i] = t.all[v].ID
	}
	return out
}

// The radix sort agrees with a stable comparison sort on every column, both ways.
func TestSortMatchesStableSort(t *testing.T) {
	evs := events(5000, 7)
	tab := newTable(evs)
	for c := ColTime; c < colWhat; c++ {
		for _, desc := range []bool{false, true} {
			tab.Sort(c, desc)
			want := slices.Clone(evs)
			key := sortKey(c)
			slices.SortStableFunc(want, func(a, b event.Event) int {
				if desc {
					return cmp.Compare(key(&b), key(&a))
				}
				return cmp.Compare(key(&a), key(&b))
			})
			wantIDs := make([]uint64, len(want))
			for i := range want {
				wantIDs[i] = want[i].ID
			}
			if diff := gocmp.Diff(wantIDs, ids(tab)); diff != "" {
				t.Fatalf("sort by %s desc=%v (-want +got):\n%s", columns[c].name, desc, diff)
			}
		}
	}
}

func TestFilter(t *testing.T) {
	evs := events(3000, 3)
	tests := []struct {
		expr string
		keep func(e *event.Event) bool
	}{
		{"type=write", func(e *event.Event) bool { return e.Type == event.TypeWrite }},
		{"type=read,write pid=101", func(e *event.Event) bool {
			return (e.Type == event.TypeRead || e.Type == event.TypeWrite) && e.PID == 101
		}},
		{"type!=sched_switch", func(e *event.Event) bool { return e.Type != event.TypeSchedSwitch }},
		{"dur>2us cpu=1", func(e *event.Event) bool { return e.DurNs > 2000 && e.CPU == 1 }},
		{"dur<=1us", func(e *event.Event) bool { return e.DurNs <= 1000 }},
		{"tid=203", func(e *event.Event) bool { return e.TID == 203 }},
		{"fd=3", func(e *event.Event) bool { return (e.Type == event.TypeRead || e.Type == event.TypeWrite) && e.FD == 3 }},
		{"tcp_send", func(e *event.Event) bool { return e.Type == event.TypeTCPSend }},
		{"", func(*event.Event) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			tab := newTable(evs)
			if err := tab.SetFilter(tt.expr); err != nil {
				t.Fatal(err)
			}
			var want []uint64
			for i := range evs {
				if tt.keep(&evs[i]) {
					want = append(want, evs[i].ID)
				}
			}
			if len(want) == 0 || len(want) == len(evs) && tt.expr != "" {
				t.Fatalf("test data makes %q trivial (%d of %d)", tt.expr, len(want), len(evs))
			}
			if diff := gocmp.Diff(want, ids(tab), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestFilterErrors(t *testing.T) {
	tests := map[string]string{
		"type=bogus": `unknown event type "bogus"`,
		"nope=1":     `unknown field "nope"`,
		"pid=abc":    "pid wants a number",
		"dur>fast":   "dur wants a duration",
		"type>write": "type takes = or !=",
		"pid=":       "no value",
	}
	for expr, want := range tests {
		tab := newTable(events(10, 1))
		before := ids(tab)
		err := tab.SetFilter("pid=100")
		if err != nil {
			t.Fatal(err)
		}
		filtered := ids(tab)
		err = tab.SetFilter(expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("SetFilter(%q) = %v, want an error with %q", expr, err, want)
		}
		// A bad filter keeps the one in force.
		if diff := gocmp.Diff(filtered, ids(tab)); diff != "" || len(filtered) == len(before) {
			t.Errorf("after a bad filter the rows changed (-want +got):\n%s", diff)
		}
	}
}

// The cursor stays on the same event across a sort and a filter that keeps it.
func TestCursorFollowsTheEvent(t *testing.T) {
	tab := newTable(events(500, 9))
	for range 37 {
		tab.Update(tea.KeyPressMsg{Code: tea.KeyDown})
	}
	sel := tab.Selected().ID
	tab.Sort(ColDur, true)
	if got := tab.Selected().ID; got != sel {
		t.Fatalf("after sorting the cursor is on event %d, want %d", got, sel)
	}
	typ := tab.Selected().Type
	if err := tab.SetFilter("type=" + typ.String()); err != nil {
		t.Fatal(err)
	}
	if got := tab.Selected().ID; got != sel {
		t.Fatalf("after filtering the cursor is on event %d, want %d", got, sel)
	}
}

// Only the visible rows are drawn: the view of 100k rows is as tall as the table.
func TestViewDrawsOnlyVisibleRows(t *testing.T) {
	tab := newTable(events(100_000, 5))
	if n := strings.Count(tab.View(), "\n"); n != 19 {
		t.Fatalf("view has %d lines, want 19 rows under the header", n+1)
	}
}

func FuzzFilter(f *testing.F) {
	for _, s := range []string{"type=write", "pid>=1 dur<1ms", "comm!=x", "=", "!", "type=,", "dur>-1s", "fd<=-3"} {
		f.Add(s)
	}
	evs := events(50, 2)
	f.Fuzz(func(t *testing.T, expr string) {
		tab := newTable(evs)
		if err := tab.SetFilter(expr); err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("error is not one line: %q", err)
		}
		_ = tab.View()
	})
}
