package ui

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"charm.land/bubbles/v2/table"
	tea "charm.land/bubbletea/v2"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/pipeline/investigate/investigatetest"
	"github.com/kprobe/kprobe/ui/common"
	"github.com/kprobe/kprobe/ui/pages/events"
)

const benchEvents = 100_000

func benchData(b *testing.B) []event.Event {
	b.Helper()
	svc := investigatetest.New(benchEvents)
	evs, err := svc.Events(context.Background(), investigate.EventQuery{})
	if err != nil || len(evs) != benchEvents {
		b.Fatalf("fixture: %d events, %v", len(evs), err)
	}
	return evs
}

// benchUI is the workstation on the events screen with n events loaded.
func benchUI(b *testing.B, evs []event.Event, w, h int) *UI {
	b.Helper()
	u := New(context.Background(), Options{Service: investigatetest.New(10), Refresh: -1})
	u.Update(tea.WindowSizeMsg{Width: w, Height: h})
	ref := investigate.Ref{Kind: investigate.KindSettlement, ID: investigatetest.Incident}
	u.Update(common.OpenEventsMsg{Title: "bench", Ref: ref, Query: investigate.EventQuery{Ref: ref}})
	u.Top().(*events.Page).SetEvents(evs)
	return u
}

// bubblesTable is the baseline: bubbles' own table with the same rows.
func bubblesTable(evs []event.Event, h int) table.Model {
	rows := make([]table.Row, len(evs))
	for i := range evs {
		e := &evs[i]
		rows[i] = table.Row{strconv.FormatInt(e.TsNs, 10), e.Type.String(), strconv.Itoa(int(e.PID)),
			strconv.Itoa(int(e.TID)), strconv.Itoa(int(e.CPU)), strconv.Itoa(int(e.FD)),
			investigate.HumanDuration(int64(e.DurNs)), investigate.Describe(e)}
	}
	cols := []table.Column{{Title: "+ms", Width: 10}, {Title: "type", Width: 12}, {Title: "pid", Width: 7},
		{Title: "tid", Width: 7}, {Title: "cpu", Width: 3}, {Title: "fd", Width: 4}, {Title: "dur", Width: 9}, {Title: "what", Width: 50}}
	return table.New(table.WithColumns(cols), table.WithRows(rows), table.WithHeight(h), table.WithFocused(true))
}

// BenchmarkView draws the events screen with 100k events loaded (goal ≤ 8 ms), beside
// bubbles' table holding the same 100k rows.
func BenchmarkView(b *testing.B) {
	evs := benchData(b)
	b.Run(fmt.Sprintf("workstation-events-%dk", benchEvents/1000), func(b *testing.B) {
		u := benchUI(b, evs, 120, 40)
		b.ReportAllocs()
		for b.Loop() {
			_ = u.View()
		}
	})
	b.Run(fmt.Sprintf("baseline-bubbles-table-%dk", benchEvents/1000), func(b *testing.B) {
		t := bubblesTable(evs, 36)
		t.MoveDown(benchEvents / 2)
		b.ReportAllocs()
		for b.Loop() {
			_ = t.View()
		}
	})
}

// BenchmarkKeypress is one key from press to the redrawn screen (goal ≤ 50 ms): Update
// with the key, then View, on 100k events; beside bubbles' table doing the same.
func BenchmarkKeypress(b *testing.B) {
	evs := benchData(b)
	down := tea.KeyPressMsg{Code: tea.KeyDown}
	up := tea.KeyPressMsg{Code: tea.KeyUp}
	b.Run(fmt.Sprintf("workstation-move-%dk", benchEvents/1000), func(b *testing.B) {
		u := benchUI(b, evs, 120, 40)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := down
			if i%2000 >= 1000 {
				k = up
			}
			i++
			u.Update(k)
			_ = u.View()
		}
	})
	b.Run(fmt.Sprintf("workstation-sort-%dk", benchEvents/1000), func(b *testing.B) {
		u := benchUI(b, evs, 120, 40)
		sort := tea.KeyPressMsg{Code: 's', Text: "s"}
		b.ReportAllocs()
		for b.Loop() {
			u.Update(sort)
			_ = u.View()
		}
	})
	b.Run(fmt.Sprintf("workstation-filter-%dk", benchEvents/1000), func(b *testing.B) {
		u := benchUI(b, evs, 120, 40)
		p := u.Top().(*events.Page)
		filters := []string{"type=write dur>10us", "pid=4242 cpu=1", ""}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := p.Table().SetFilter(filters[i%len(filters)]); err != nil {
				b.Fatal(err)
			}
			i++
			_ = u.View()
		}
	})
	b.Run(fmt.Sprintf("baseline-bubbles-table-move-%dk", benchEvents/1000), func(b *testing.B) {
		t := bubblesTable(evs, 36)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k := down
			if i%2000 >= 1000 {
				k = up
			}
			i++
			t, _ = t.Update(k)
			_ = t.View()
		}
	})
}
