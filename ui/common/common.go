// Package common is what every page and component of the workstation shares: the size,
// the styles, the key map, the data services and the messages pages send one another.
package common

import (
	"context"
	"log/slog"
	"time"

	"charm.land/bubbles/v2/help"
	tea "charm.land/bubbletea/v2"

	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui/keymap"
	"github.com/kprobe/kprobe/ui/styles"
)

// Common is one session's shared state. Each workstation (one per terminal or SSH
// session) has its own: nothing here is global.
type Common struct {
	Ctx           context.Context
	Width, Height int
	Styles        *styles.Styles
	Keys          *keymap.KeyMap
	Service       investigate.Service
	Replayer      Replayer // nil: replay is unavailable (the page says so)
	// ExportDir is where `e` writes incident reports.
	ExportDir string
	// Source is how the data was opened, as flags ("--data /var/lib/kprobe"), for the
	// report's commands that reproduce each view.
	Source string
	// Plain is true when the terminal shows no colour (NO_COLOR, a dumb terminal, or a
	// pinned ASCII profile); the markdown preview then uses its plain style.
	Plain  bool
	Logger *slog.Logger
	// ReplayProgram is the command the replay form proposes to run in place of the
	// recorded process.
	ReplayProgram string
	// Refresh is how often the start screen re-reads the recent window (0: never).
	Refresh time.Duration

	lastID      int
	experiments map[investigate.Ref][]investigate.Experiment
}

// Component is one piece of a page: it updates itself, draws itself into the size it was
// given, and says which keys it honours.
type Component interface {
	help.KeyMap
	SetSize(width, height int)
	View() string
}

// Page is one screen of the workstation.
type Page interface {
	help.KeyMap
	Init() tea.Cmd
	Update(tea.Msg) (Page, tea.Cmd)
	View() string
	SetSize(width, height int)
	// Title names the page in the header ("chain · settlement 4821").
	Title() string
	// Capturing is true while the page takes typed text (a form, a prompt): the root
	// then passes every key to it instead of acting on single-letter shortcuts.
	Capturing() bool
	// Subject is the business object the page is about, for `e` and `:replay`.
	Subject() (investigate.Ref, bool)
}

// NewID returns a number unique within this session, for pages to tag their messages:
// messages other than keys reach every page on the stack, and each keeps only its own.
func (c *Common) NewID() int {
	c.lastID++
	return c.lastID
}

// Record keeps a finished replay run of ref for the incident report.
func (c *Common) Record(ref investigate.Ref, x investigate.Experiment) {
	if c.experiments == nil {
		c.experiments = map[investigate.Ref][]investigate.Experiment{}
	}
	c.experiments[ref] = append(c.experiments[ref], x)
}

// Experiments are the replay runs of ref made in this session, oldest first.
func (c *Common) Experiments(ref investigate.Ref) []investigate.Experiment {
	return append([]investigate.Experiment(nil), c.experiments[ref]...)
}
