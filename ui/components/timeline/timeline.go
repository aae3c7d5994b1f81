// Package timeline draws a span's time as a strip of cells, each showing what the thread
// was mostly doing then: on CPU, off CPU (blocked or preempted), in file I/O, or waiting
// on the network. Each kind has its own glyph so the strip reads without colour.
package timeline

import (
	"strings"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/ui/styles"
)

// Kind is what a cell of the strip shows.
type Kind uint8

// Kinds in rising priority (see Compute).
const (
	OnCPU Kind = iota
	OffCPU
	IO
	Net
	kinds
)

var glyphs = [kinds]string{OnCPU: "█", OffCPU: "·", IO: "▒", Net: "≈"}

// Strip is a computed timeline; compute it once per (events, window, width) and draw it
// on every frame.
type Strip struct {
	From, To int64
	Cells    []Kind
}

func kindOf(e *event.Event) (Kind, bool) {
	switch e.Type {
	case event.TypeTCPSend, event.TypeTCPRecv:
		return Net, true
	case event.TypeRead, event.TypeWrite:
		return IO, true
	case event.TypeSchedSwitch:
		return OffCPU, true
	}
	return OnCPU, false
}

// Compute classifies width cells over [from, to) from events whose interval is
// [TsNs, TsNs+DurNs): each cell shows the kind that covers most of its time, on-CPU being
// whatever no event covers. Ties go to the higher kind (a blocking read is I/O, not just
// off-CPU). The cost is one pass over the events plus the cells each one overlaps.
func Compute(events []event.Event, from, to int64, width int) Strip {
	s := Strip{From: from, To: to, Cells: make([]Kind, max(width, 0))}
	if width <= 0 || to <= from {
		return s
	}
	cellNs := float64(to-from) / float64(width)
	cover := make([][kinds]float64, width)
	for i := range events {
		e := &events[i]
		k, ok := kindOf(e)
		start, end := max(e.TsNs, from), min(e.TsNs+int64(e.DurNs), to)
		if !ok || end <= start {
			continue
		}
		first := int(float64(start-from) / cellNs)
		last := min(int(float64(end-from-1)/cellNs), width-1)
		for c := first; c <= last; c++ {
			lo := max(float64(start-from), float64(c)*cellNs)
			hi := min(float64(end-from), float64(c+1)*cellNs)
			if hi > lo {
				cover[c][k] += hi - lo
			}
		}
	}
	for c := range cover {
		var busy float64
		for k := OffCPU; k < kinds; k++ {
			busy += cover[c][k]
		}
		cover[c][OnCPU] = cellNs - busy
		best := OnCPU
		for k := OffCPU; k < kinds; k++ {
			if cover[c][k] > 0 && cover[c][k] >= cover[c][best] {
				best = k
			}
		}
		s.Cells[c] = best
	}
	return s
}

// View draws the strip.
func (s Strip) View(st *styles.Styles) string {
	style := [kinds]func(...string) string{OnCPU: st.OnCPU.Render, OffCPU: st.OffCPU.Render, IO: st.IO.Render, Net: st.Net.Render}
	var b strings.Builder
	for i := 0; i < len(s.Cells); {
		j := i
		for j < len(s.Cells) && s.Cells[j] == s.Cells[i] {
			j++
		}
		b.WriteString(style[s.Cells[i]](strings.Repeat(glyphs[s.Cells[i]], j-i)))
		i = j
	}
	return b.String()
}

// Caret returns a line with "^" under the cell holding ts (blank when outside).
func (s Strip) Caret(ts int64) string {
	w := len(s.Cells)
	if w == 0 || s.To <= s.From || ts < s.From || ts >= s.To {
		return ""
	}
	c := min(int(float64(ts-s.From)/float64(s.To-s.From)*float64(w)), w-1)
	return strings.Repeat(" ", c) + "^"
}

// Legend names the glyphs.
func Legend(st *styles.Styles) string {
	return st.OnCPU.Render(glyphs[OnCPU]) + " on-CPU " + st.OffCPU.Render(glyphs[OffCPU]) + " off-CPU " +
		st.IO.Render(glyphs[IO]) + " I/O " + st.Net.Render(glyphs[Net]) + " net"
}
