// Package eventtable is the kernel-event table of the workstation. It is virtualised:
// it keeps the events once and an index of the filtered, sorted view, and draws only
// the rows on screen, so a frame costs the same at 100 rows and at 100k.
package eventtable

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui/components/window"
	"github.com/kprobe/kprobe/ui/keymap"
	"github.com/kprobe/kprobe/ui/styles"
)

// Column is a sortable column.
type Column int

// Columns, in screen order; What is not sortable.
const (
	ColTime Column = iota
	ColType
	ColPID
	ColTID
	ColCPU
	ColFD
	ColDur
	colWhat
)

var columns = [...]struct {
	name  string
	width int
	right bool
}{
	ColTime: {"+ms", 10, true},
	ColType: {"type", 12, false},
	ColPID:  {"pid", 7, true},
	ColTID:  {"tid", 7, true},
	ColCPU:  {"cpu", 3, true},
	ColFD:   {"fd", 4, true},
	ColDur:  {"dur", 9, true},
	colWhat: {"what", 0, false},
}

// Table is the event table.
type Table struct {
	st   *styles.Styles
	keys *keymap.KeyMap
	all  []event.Event
	view []int32 // indexes into all: the filtered, sorted rows
	// filtered holds the rows that pass the filter, in time order; view is it sorted.
	filtered     []int32
	keyed, spare []keyedRow
	count        *[1 << 16]int // radix buckets, kept: 512 KiB per sort otherwise
	marked       map[uint64]bool
	base         int64 // +ms is relative to this
	win          window.Window
	width        int

	sortCol    Column
	desc       bool
	filterText string
}

// New returns an empty table.
func New(st *styles.Styles, keys *keymap.KeyMap) *Table {
	return &Table{st: st, keys: keys, sortCol: ColTime}
}

// SetEvents replaces the events (ordered by time), flags marked IDs and keeps the current
// sort and filter. base is the time +ms counts from.
func (t *Table) SetEvents(evs []event.Event, marked []uint64, base int64) {
	t.all, t.base = evs, base
	t.marked = make(map[uint64]bool, len(marked))
	for _, id := range marked {
		t.marked[id] = true
	}
	f, err := parseFilter(t.filterText)
	if err != nil {
		f = nil
	}
	t.rebuild(f)
}

// SetSize gives the table its width and height (header included).
func (t *Table) SetSize(w, h int) {
	t.width = w
	t.win.SetHeight(h - 1)
}

// SetFilter applies a filter expression; on error the previous filter stays.
func (t *Table) SetFilter(s string) error {
	f, err := parseFilter(s)
	if err != nil {
		return err
	}
	t.filterText = s
	t.rebuild(f)
	return nil
}

// Filter is the filter expression in force.
func (t *Table) Filter() string { return t.filterText }

// Sort orders the rows by col (descending when desc), keeping the selected event under
// the cursor.
func (t *Table) Sort(col Column, desc bool) {
	sel := t.selectedIndex()
	t.sortCol, t.desc = col, desc
	t.sortView()
	t.follow(sel)
}

// SortState is the column and direction in force.
func (t *Table) SortState() (Column, bool) { return t.sortCol, t.desc }

// Len is the number of rows shown; Total the number of events loaded.
func (t *Table) Len() int   { return len(t.view) }
func (t *Table) Total() int { return len(t.all) }

// Top puts the cursor on the first row.
func (t *Table) Top() { t.win.Goto(0) }

// Selected is the event under the cursor (nil when the table is empty).
func (t *Table) Selected() *event.Event {
	if i := t.selectedIndex(); i >= 0 {
		return &t.all[i]
	}
	return nil
}

func (t *Table) selectedIndex() int {
	if t.win.Cursor < len(t.view) {
		return int(t.view[t.win.Cursor])
	}
	return -1
}

// Update handles movement and sort keys; it reports whether the key was the table's.
func (t *Table) Update(msg tea.KeyPressMsg) bool {
	switch {
	case key.Matches(msg, t.keys.Sort):
		next := (t.sortCol + 1) % colWhat
		// Durations are read slowest first; everything else in rising order.
		t.Sort(next, next == ColDur)
	case key.Matches(msg, t.keys.Reverse):
		t.Sort(t.sortCol, !t.desc)
	default:
		return t.win.HandleKey(msg, t.keys)
	}
	return true
}

func (t *Table) rebuild(f filter) {
	sel := t.selectedIndex()
	t.filtered = t.filtered[:0]
	for i := range t.all {
		if f == nil || f.match(&t.all[i]) {
			t.filtered = append(t.filtered, int32(i))
		}
	}
	t.sortView()
	t.win.SetLen(len(t.view))
	t.follow(sel)
}

// sortView orders the view by the sort column, ties in time order (the events' own
// order), so equal rows never swap between sorts. It reads the keys once and sorts them
// with a stable radix sort: comparison sorts over 100k rows cost tens of milliseconds,
// most of a keypress's budget.
func (t *Table) sortView() {
	get := sortKey(t.sortCol)
	keyed := t.keyed[:0]
	for _, i := range t.filtered {
		k := get(&t.all[i])
		if t.desc {
			k = -k
		}
		keyed = append(keyed, keyedRow{uint64(k) ^ 1<<63, i})
	}
	if t.count == nil {
		t.count = new([1 << 16]int)
	}
	t.keyed, t.spare = radixSort(keyed, t.spare, t.count)
	t.view = t.view[:0]
	for _, k := range t.keyed {
		t.view = append(t.view, k.idx)
	}
}

type keyedRow struct {
	key uint64
	idx int32
}

// radixSort sorts rows by key, stably, 16 bits per pass, skipping the passes where every
// key has the same digit. spare is scratch space; both slices come back for reuse.
func radixSort(rows, spare []keyedRow, count *[1 << 16]int) ([]keyedRow, []keyedRow) {
	spare = slices.Grow(spare[:0], len(rows))[:len(rows)]
	for shift := uint(0); shift < 64; shift += 16 {
		clear(count[:])
		for _, r := range rows {
			count[(r.key>>shift)&0xffff]++
		}
		if len(rows) == 0 || count[(rows[0].key>>shift)&0xffff] == len(rows) {
			continue
		}
		pos := 0
		for d, n := range count {
			count[d] = pos
			pos += n
		}
		for _, r := range rows {
			d := (r.key >> shift) & 0xffff
			spare[count[d]] = r
			count[d]++
		}
		rows, spare = spare, rows
	}
	return rows, spare
}

func sortKey(c Column) func(*event.Event) int64 {
	switch c {
	case ColType:
		return func(e *event.Event) int64 { return int64(e.Type) }
	case ColPID:
		return func(e *event.Event) int64 { return int64(e.PID) }
	case ColTID:
		return func(e *event.Event) int64 { return int64(e.TID) }
	case ColCPU:
		return func(e *event.Event) int64 { return int64(e.CPU) }
	case ColFD:
		return fdOf
	case ColDur:
		return func(e *event.Event) int64 { return int64(e.DurNs) }
	}
	return func(e *event.Event) int64 { return e.TsNs }
}

// follow puts the cursor back on the event that was selected, if it is still shown.
func (t *Table) follow(idx int) {
	t.win.SetLen(len(t.view))
	if idx < 0 {
		return
	}
	for row, i := range t.view {
		if int(i) == idx {
			t.win.Goto(row)
			return
		}
	}
}

// KeyBindings are the table's keys, for help.
func (t *Table) KeyBindings() []key.Binding {
	return append(t.keys.Moves(), t.keys.Sort, t.keys.Reverse)
}

// View draws the header and the visible rows only.
func (t *Table) View() string {
	var b strings.Builder
	b.WriteString(t.st.Header.Render(t.header()))
	from, to := t.win.Visible()
	row := make([]byte, 0, 256)
	for r := from; r < to; r++ {
		e := &t.all[t.view[r]]
		row = t.appendRow(row[:0], e, r == t.win.Cursor)
		line := string(row)
		b.WriteByte('\n')
		switch {
		case r == t.win.Cursor:
			b.WriteString(t.st.Selected.Render(line))
		case t.marked[e.ID]:
			b.WriteString(t.st.Marked.Render(line))
		default:
			b.WriteString(line)
		}
	}
	if len(t.view) == 0 {
		b.WriteString("\n  " + t.st.Muted.Render("no events match"))
	}
	return b.String()
}

func (t *Table) header() string {
	cells := make([]byte, 0, 128)
	cells = append(cells, "  "...)
	for c := ColTime; c <= colWhat; c++ {
		name := columns[c].name
		if c == t.sortCol {
			if t.desc {
				name += "▼"
			} else {
				name += "▲"
			}
		}
		cells = t.appendCell(cells, c, name)
	}
	return clip(string(cells), t.width)
}

// appendRow draws one event; the first two cells mark the cursor (›) and evidence (★)
// so both show without colour.
func (t *Table) appendRow(b []byte, e *event.Event, cursor bool) []byte {
	if cursor {
		b = append(b, "›"...)
	} else {
		b = append(b, ' ')
	}
	if t.marked[e.ID] {
		b = append(b, "★"...)
	} else {
		b = append(b, ' ')
	}
	var num [32]byte
	ms := strconv.AppendFloat(num[:0], float64(e.TsNs-t.base)/1e6, 'f', 3, 64)
	b = t.appendCell(b, ColTime, string(ms))
	b = t.appendCell(b, ColType, e.Type.String())
	b = t.appendCell(b, ColPID, strconv.FormatUint(uint64(e.PID), 10))
	b = t.appendCell(b, ColTID, strconv.FormatUint(uint64(e.TID), 10))
	b = t.appendCell(b, ColCPU, strconv.FormatUint(uint64(e.CPU), 10))
	fd := "-"
	if n := fdOf(e); n >= 0 {
		fd = strconv.FormatInt(n, 10)
	}
	b = t.appendCell(b, ColFD, fd)
	b = t.appendCell(b, ColDur, investigate.HumanDuration(int64(e.DurNs)))
	b = append(b, investigate.Describe(e)...)
	return clipBytes(b, t.width)
}

func (t *Table) appendCell(b []byte, c Column, s string) []byte {
	w := columns[c].width
	if w == 0 {
		return append(b, s...)
	}
	n := utf8.RuneCountInString(s)
	if n > w {
		s, n = string([]rune(s)[:w]), w
	}
	if columns[c].right {
		b = appendSpaces(b, w-n)
		b = append(b, s...)
	} else {
		b = append(b, s...)
		b = appendSpaces(b, w-n)
	}
	return append(b, ' ')
}

func appendSpaces(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, ' ')
	}
	return b
}

// clip cuts s to w cells (every cell here is one rune wide).
func clip(s string, w int) string {
	if w <= 0 || utf8.RuneCountInString(s) <= w {
		return s
	}
	return string([]rune(s)[:w])
}

func clipBytes(b []byte, w int) []byte {
	if w <= 0 || utf8.RuneCount(b) <= w {
		return b
	}
	n := 0
	for i := range string(b) {
		if n == w {
			return b[:i]
		}
		n++
	}
	return b
}
