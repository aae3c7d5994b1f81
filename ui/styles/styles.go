// Package styles is the one place the workstation's look is defined.
package styles

import (
	"image/color"

	"charm.land/lipgloss/v2"
)

// Styles holds every style the workstation uses. Colours are the terminal's 16 ANSI
// colours so they follow its theme; the renderer drops them under NO_COLOR, so nothing
// may rely on colour alone: selection also carries a marker and reverse video, and the
// timeline strip uses a different glyph per segment kind.
type Styles struct {
	App       lipgloss.Style
	Title     lipgloss.Style
	Subtitle  lipgloss.Style
	Muted     lipgloss.Style
	Header    lipgloss.Style // table column headers
	Selected  lipgloss.Style // the row under the cursor
	Marked    lipgloss.Style // evidence rows, divergent syscalls
	Error     lipgloss.Style
	OK        lipgloss.Style
	Warn      lipgloss.Style
	Key       lipgloss.Style // a key in inline help
	Border    lipgloss.Style // pane borders
	Focused   lipgloss.Style // the focused pane's border
	StatusBar lipgloss.Style
	Prompt    lipgloss.Style
	BarFull   lipgloss.Style
	BarEmpty  lipgloss.Style

	// Timeline segments.
	OnCPU, OffCPU, RunQueue, IO, Net lipgloss.Style

	// Replay trace marks.
	Served, Native, Tweaked, Divergent lipgloss.Style
}

var (
	red     = lipgloss.Color("1")
	green   = lipgloss.Color("2")
	yellow  = lipgloss.Color("3")
	blue    = lipgloss.Color("4")
	magenta = lipgloss.Color("5")
	cyan    = lipgloss.Color("6")
	grey    = lipgloss.Color("8")
)

func fg(c color.Color) lipgloss.Style { return lipgloss.NewStyle().Foreground(c) }

// Default returns the workstation's styles.
func Default() Styles {
	return Styles{
		App:       lipgloss.NewStyle(),
		Title:     lipgloss.NewStyle().Bold(true),
		Subtitle:  fg(cyan),
		Muted:     fg(grey),
		Header:    lipgloss.NewStyle().Bold(true).Underline(true),
		Selected:  lipgloss.NewStyle().Reverse(true),
		Marked:    fg(yellow).Bold(true),
		Error:     fg(red).Bold(true),
		OK:        fg(green),
		Warn:      fg(yellow),
		Key:       fg(cyan).Bold(true),
		Border:    lipgloss.NewStyle().Border(lipgloss.NormalBorder()).BorderForeground(grey),
		Focused:   lipgloss.NewStyle().Border(lipgloss.NormalBorder()).BorderForeground(cyan),
		StatusBar: lipgloss.NewStyle().Reverse(true),
		Prompt:    fg(cyan).Bold(true),
		BarFull:   fg(magenta),
		BarEmpty:  fg(grey),
		OnCPU:     fg(green),
		OffCPU:    fg(grey),
		RunQueue:  fg(yellow),
		IO:        fg(magenta),
		Net:       fg(blue),
		Served:    fg(green),
		Native:    fg(grey),
		Tweaked:   fg(yellow).Bold(true),
		Divergent: fg(red).Bold(true),
	}
}
