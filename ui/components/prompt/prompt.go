// Package prompt is a one-line text input for the command line (`:`), the filter (`/`)
// and typing an ID at the start screen. Unlike bubbles' textinput it never blinks, so a
// screen is a pure function of the keys typed (golden screens stay stable).
package prompt

import (
	"unicode/utf8"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
)

// Prompt is a line being typed after a prefix (":", "/", "open ").
type Prompt struct {
	Prefix string
	Style  lipgloss.Style
	value  []rune
	width  int
}

// Result says what a key did to the prompt.
type Result int

const (
	Editing   Result = iota // the key changed (or did not change) the text
	Submitted               // enter
	Cancelled               // esc, or backspace on an empty line
)

// New returns an empty prompt.
func New(prefix string, style lipgloss.Style) Prompt { return Prompt{Prefix: prefix, Style: style} }

// Value is the text typed so far.
func (p *Prompt) Value() string { return string(p.value) }

// SetValue replaces the text.
func (p *Prompt) SetValue(s string) { p.value = []rune(s) }

// SetWidth bounds what View draws.
func (p *Prompt) SetWidth(w int) { p.width = w }

// Update applies one key.
func (p *Prompt) Update(msg tea.KeyPressMsg) Result {
	switch msg.String() {
	case "enter":
		return Submitted
	case "esc", "ctrl+c":
		return Cancelled
	case "backspace", "ctrl+h":
		if len(p.value) == 0 {
			return Cancelled
		}
		p.value = p.value[:len(p.value)-1]
	case "ctrl+u":
		p.value = p.value[:0]
	case "ctrl+w":
		i := len(p.value)
		for i > 0 && p.value[i-1] == ' ' {
			i--
		}
		for i > 0 && p.value[i-1] != ' ' {
			i--
		}
		p.value = p.value[:i]
	default:
		if msg.Text != "" && utf8.ValidString(msg.Text) {
			p.value = append(p.value, []rune(msg.Text)...)
		}
	}
	return Editing
}

// View draws the prefix, the text and a block cursor, keeping the end of a long line in
// view.
func (p *Prompt) View() string {
	v := p.value
	if room := p.width - utf8.RuneCountInString(p.Prefix) - 1; p.width > 0 && len(v) > room {
		v = v[len(v)-max(room, 0):]
	}
	return p.Style.Render(p.Prefix) + string(v) + "█"
}
