// Package start is the workstation's first screen: the slowest and the failed
// settlements, the payments and the clearing windows of the recent window, refreshed
// while a recorder runs. Typing an ID and enter opens it.
package start

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui/common"
	"github.com/kprobe/kprobe/ui/components/prompt"
	"github.com/kprobe/kprobe/ui/components/window"
)

// A list is one tab of the start screen.
type list struct {
	title string
	query investigate.SubjectQuery
}

var lists = []list{
	{"slowest settlements", investigate.SubjectQuery{Kind: investigate.KindSettlement, Limit: 50}},
	{"failed", investigate.SubjectQuery{Kind: investigate.KindSettlement, FailedOnly: true, Limit: 50}},
	{"payments", investigate.SubjectQuery{Kind: investigate.KindPayment, Limit: 50}},
	{"clearing windows", investigate.SubjectQuery{Kind: investigate.KindClearingWindow, Limit: 50}},
}

// loadedMsg carries one read of one list. The lists are read one after another, the one
// in view first, so the first screen waits for one query, not all of them. A list's first
// read leaves its events uncounted (counting scans the log): it is shown at once, and read
// again with its counts before the next list.
type loadedMsg struct {
	page int
	list int
	subs []investigate.Subject
	err  error
}

// refreshMsg re-reads the lists (the live update while a recorder runs).
type refreshMsg struct{ page int }

// Page is the start screen.
type Page struct {
	c       *common.Common
	id      int
	tab     int
	data    [][]investigate.Subject
	have    []bool // the lists read at least once
	loaded  bool   // every list read at least once
	loads   int
	err     error
	win     window.Window
	typing  bool
	input   prompt.Prompt
	width   int
	height  int
	loading bool
}

// New returns the start screen.
func New(c *common.Common) *Page {
	p := &Page{c: c, id: c.NewID(), data: make([][]investigate.Subject, len(lists)), have: make([]bool, len(lists))}
	p.input = prompt.New("open: ", c.Styles.Prompt)
	return p
}

// Init loads the lists.
func (p *Page) Init() tea.Cmd { return p.load() }

func (p *Page) load() tea.Cmd {
	p.loading = true
	return p.loadList(0)
}

// loadList reads list i, without its counts the first time; its message asks for the
// counts, or for the next list.
func (p *Page) loadList(i int) tea.Cmd {
	svc, ctx, id := p.c.Service, p.c.Ctx, p.id
	q := lists[i].query
	q.Uncounted = !p.have[i]
	return func() tea.Msg {
		subs, err := svc.Subjects(ctx, q)
		if err != nil {
			err = fmt.Errorf("reading %s: %w", lists[i].title, err)
		}
		return loadedMsg{page: id, list: i, subs: subs, err: err}
	}
}

// Title implements common.Page.
func (p *Page) Title() string { return "start" }

// Capturing implements common.Page: true while an ID is being typed.
func (p *Page) Capturing() bool { return p.typing }

// Subject implements common.Page: the selected row.
func (p *Page) Subject() (investigate.Ref, bool) {
	if s, ok := p.selected(); ok {
		return investigate.Ref{Kind: s.Kind, ID: s.ID}, true
	}
	return investigate.Ref{}, false
}

func (p *Page) selected() (investigate.Subject, bool) {
	rows := p.data[p.tab]
	if p.win.Cursor < len(rows) {
		return rows[p.win.Cursor], true
	}
	return investigate.Subject{}, false
}

// SetSize implements common.Page.
func (p *Page) SetSize(w, h int) {
	p.width, p.height = w, h
	p.input.SetWidth(w)
	// tabs, hint, header and the prompt line take four rows.
	p.win.SetHeight(h - 4)
}

// Update implements common.Page.
func (p *Page) Update(msg tea.Msg) (common.Page, tea.Cmd) {
	switch msg := msg.(type) {
	case loadedMsg:
		if msg.page != p.id {
			return p, nil
		}
		p.err = msg.err
		if msg.err == nil {
			p.data[msg.list], p.have[msg.list] = msg.subs, true
			if msg.list == p.tab {
				p.win.SetLen(len(p.data[p.tab]))
			}
			if uncounted(msg.subs) {
				return p, p.loadList(msg.list)
			}
			if msg.list+1 < len(lists) {
				return p, p.loadList(msg.list + 1)
			}
			p.loaded = true
			p.loads++
		}
		p.loading = false
		if p.c.Refresh > 0 {
			return p, tea.Tick(p.c.Refresh, func(time.Time) tea.Msg { return refreshMsg{page: p.id} })
		}
	case refreshMsg:
		if msg.page == p.id {
			return p, p.load()
		}
	case tea.KeyPressMsg:
		return p, p.key(msg)
	}
	return p, nil
}

func (p *Page) key(msg tea.KeyPressMsg) tea.Cmd {
	k := p.c.Keys
	if p.typing {
		switch p.input.Update(msg) {
		case prompt.Submitted:
			p.typing = false
			id := strings.TrimSpace(p.input.Value())
			p.input.SetValue("")
			if id == "" {
				return nil
			}
			return common.Cmd(common.OpenSubjectMsg{Ref: investigate.Ref{Kind: p.kind(), ID: id}})
		case prompt.Cancelled:
			p.typing = false
			p.input.SetValue("")
		}
		return nil
	}
	switch {
	case len(msg.Text) == 1 && unicode.IsDigit(rune(msg.Text[0])):
		// Settlement IDs are numbers: typing one starts the prompt.
		p.typing = true
		p.input.SetValue(msg.Text)
	case key.Matches(msg, k.Tab):
		p.tab = (p.tab + 1) % len(lists)
		p.win.SetLen(len(p.data[p.tab]))
		p.win.Goto(0)
	case key.Matches(msg, k.Enter):
		if s, ok := p.selected(); ok {
			return common.Cmd(common.OpenSubjectMsg{Ref: investigate.Ref{Kind: s.Kind, ID: s.ID}})
		}
	default:
		p.win.HandleKey(msg, k)
	}
	return nil
}

// kind is what a typed ID names: the kind of the list in view.
func (p *Page) kind() string {
	if k := lists[p.tab].query.Kind; k != "" {
		return k
	}
	return investigate.KindSettlement
}

// ShortHelp implements help.KeyMap.
func (p *Page) ShortHelp() []key.Binding {
	k := p.c.Keys
	return []key.Binding{k.Enter, k.Tab, k.Export, k.Command, k.Help, k.Quit}
}

// FullHelp implements help.KeyMap.
func (p *Page) FullHelp() [][]key.Binding {
	k := p.c.Keys
	return [][]key.Binding{{k.Enter, k.Tab}, k.Moves(), k.Global()}
}

// View implements common.Page.
func (p *Page) View() string {
	st := p.c.Styles
	var b strings.Builder
	for i, l := range lists {
		name := fmt.Sprintf("%s (%d)", l.title, len(p.data[i]))
		if !p.have[i] {
			name = l.title + " (…)"
		}
		if i == p.tab {
			b.WriteString(st.Title.Render("[" + name + "]"))
		} else {
			b.WriteString(st.Muted.Render(" " + name + " "))
		}
		b.WriteString(" ")
	}
	lines := []string{ansi.Truncate(b.String(), p.width, "…")}
	hint := "type an ID and enter to open it · enter opens the selected row · tab next list"
	if p.c.Refresh > 0 && p.loaded {
		hint = "live · " + hint
	}
	lines = append(lines, st.Muted.Render(ansi.Truncate(hint, p.width, "…")))
	lines = append(lines, st.Header.Render(ansi.Truncate(subjectHeader, p.width, "")))
	rows := p.data[p.tab]
	switch {
	case p.err != nil:
		lines = append(lines, st.Error.Render(ansi.Truncate(p.err.Error(), p.width, "…")))
	case !p.have[p.tab]:
		lines = append(lines, st.Muted.Render("loading…"))
	case len(rows) == 0:
		lines = append(lines, st.Muted.Render(ansi.Truncate(emptyHint(lists[p.tab]), p.width, "…")))
	}
	from, to := p.win.Visible()
	for i := from; i < to && i < len(rows); i++ {
		line := ansi.Truncate(subjectRow(rows[i], i == p.win.Cursor), p.width, "…")
		if i == p.win.Cursor {
			line = st.Selected.Render(line)
		} else if rows[i].Status == "error" {
			line = st.Error.Render(line)
		}
		lines = append(lines, line)
	}
	for len(lines) < p.height-1 {
		lines = append(lines, "")
	}
	if p.typing {
		lines = append(lines, p.input.View())
	}
	return strings.Join(lines[:min(len(lines), max(p.height, 1))], "\n")
}

// uncounted tells whether some subject's events are still to be counted.
func uncounted(subs []investigate.Subject) bool {
	for _, s := range subs {
		if s.Events == investigate.EventsUncounted {
			return true
		}
	}
	return false
}

func emptyHint(l list) string {
	if l.query.FailedOnly {
		return "none failed"
	}
	return "none recorded yet (is a recorder running, and are spans sent to its OTLP receiver?)"
}

const subjectHeader = "  id           duration status start (UTC)     service        pid     events"

func subjectRow(s investigate.Subject, sel bool) string {
	mark := "  "
	if sel {
		mark = "› "
	}
	status := s.Status
	if status == "" {
		status = "-"
	}
	events := strconv.Itoa(s.Events)
	if s.Events == investigate.EventsUncounted {
		events = "…" // counted next
	}
	return fmt.Sprintf("%s%-12s %8s %-6s %-15s %-14s %-7s %6s", mark, clipTo(s.ID, 12),
		investigate.HumanDuration(s.DurationNs), status, investigate.Clock(s.StartNs),
		clipTo(s.Service, 14), strconv.FormatUint(uint64(s.PID), 10), events)
}

func clipTo(s string, n int) string { return ansi.Truncate(s, n, "…") }

// Loads is how many times the lists were read (for tests of the live update).
func (p *Page) Loads() int { return p.loads }
