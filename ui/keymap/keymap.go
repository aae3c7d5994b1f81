// Package keymap is the workstation's one set of key bindings; `?` shows them. The keys
// are also a contract for scripted tests (see the README's workstation section).
package keymap

import "charm.land/bubbles/v2/key"

// KeyMap is every binding of the workstation. Pages pick the ones they honour for their
// help; the root handles the global ones (quit, help, command line, export, back).
type KeyMap struct {
	Quit    key.Binding
	Help    key.Binding
	Filter  key.Binding
	Command key.Binding
	Back    key.Binding
	Enter   key.Binding
	Tab     key.Binding
	Export  key.Binding
	Report  key.Binding
	Replay  key.Binding

	Up, Down, PageUp, PageDown, Top, Bottom key.Binding
	Expand, Collapse                        key.Binding

	Sort, Reverse key.Binding // events table: next sort column, reverse order
	Detail        key.Binding // events table: the event under the cursor in full
	NewRun        key.Binding // replay: another run with other tweaks
	Compare       key.Binding // replay: every run side by side with production
	Follow        key.Binding // replay trace: follow the tail
}

// Default returns the bindings people know from k9s, lazygit and less.
func Default() KeyMap {
	b := func(help, desc string, keys ...string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	return KeyMap{
		Quit:     b("q", "quit", "q", "ctrl+c"),
		Help:     b("?", "help", "?"),
		Filter:   b("/", "filter", "/"),
		Command:  b(":", "command", ":"),
		Back:     b("esc", "back", "esc"),
		Enter:    b("enter", "open", "enter"),
		Tab:      b("tab", "switch pane", "tab"),
		Export:   b("e", "export report", "e"),
		Report:   b("p", "preview report", "p"),
		Replay:   b("r", "replay", "r"),
		Up:       b("↑/k", "up", "up", "k"),
		Down:     b("↓/j", "down", "down", "j"),
		PageUp:   b("pgup", "page up", "pgup", "ctrl+b", "ctrl+u"),
		PageDown: b("pgdn", "page down", "pgdown", "ctrl+f", "ctrl+d", "space"),
		Top:      b("g", "top", "g", "home"),
		Bottom:   b("G", "bottom", "G", "end"),
		Expand:   b("→/l", "expand", "right", "l"),
		Collapse: b("←/h", "collapse", "left", "h"),
		Sort:     b("s", "sort column", "s"),
		Reverse:  b("S", "reverse sort", "S"),
		Detail:   b("enter", "event detail", "enter"),
		NewRun:   b("n", "new run", "n"),
		Compare:  b("c", "compare runs", "c"),
		Follow:   b("f", "follow", "f"),
	}
}

// Global are the bindings every page honours, for the help screen.
func (k KeyMap) Global() []key.Binding {
	return []key.Binding{k.Help, k.Command, k.Back, k.Export, k.Report, k.Quit}
}

// Moves are the cursor bindings of every list and table.
func (k KeyMap) Moves() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}
}
