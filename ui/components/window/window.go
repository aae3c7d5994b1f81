// Package window keeps a cursor and a scroll offset over a list of n rows of which only
// height are visible: the one piece of scrolling logic every list and table shares.
package window

import (
	tea "charm.land/bubbletea/v2"

	"charm.land/bubbles/v2/key"

	"github.com/kprobe/kprobe/ui/keymap"
)

// Window is a cursor over n rows with height rows visible.
type Window struct {
	Cursor, Offset int
	N, Height      int
}

// SetLen changes the number of rows, keeping the cursor inside.
func (w *Window) SetLen(n int) {
	w.N = n
	w.clamp()
}

// SetHeight changes the number of visible rows.
func (w *Window) SetHeight(h int) {
	w.Height = max(h, 1)
	w.clamp()
}

// Move moves the cursor by d rows.
func (w *Window) Move(d int) {
	w.Cursor += d
	w.clamp()
}

// Goto puts the cursor on row i.
func (w *Window) Goto(i int) {
	w.Cursor = i
	w.clamp()
}

// Visible returns the rows [from, to) on screen.
func (w *Window) Visible() (from, to int) {
	return w.Offset, min(w.Offset+w.Height, w.N)
}

// HandleKey moves the cursor for the movement keys; it reports whether the key was one.
func (w *Window) HandleKey(msg tea.KeyPressMsg, k *keymap.KeyMap) bool {
	switch {
	case key.Matches(msg, k.Up):
		w.Move(-1)
	case key.Matches(msg, k.Down):
		w.Move(1)
	case key.Matches(msg, k.PageUp):
		w.Move(-w.Height)
	case key.Matches(msg, k.PageDown):
		w.Move(w.Height)
	case key.Matches(msg, k.Top):
		w.Goto(0)
	case key.Matches(msg, k.Bottom):
		w.Goto(w.N - 1)
	default:
		return false
	}
	return true
}

func (w *Window) clamp() {
	if w.Height < 1 {
		w.Height = 1
	}
	w.Cursor = min(max(w.Cursor, 0), max(w.N-1, 0))
	if w.Cursor < w.Offset {
		w.Offset = w.Cursor
	}
	if w.Cursor >= w.Offset+w.Height {
		w.Offset = w.Cursor - w.Height + 1
	}
	w.Offset = min(max(w.Offset, 0), max(w.N-w.Height, 0))
}
