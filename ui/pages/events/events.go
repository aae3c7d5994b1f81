// Package events is the kernel-events screen behind one node of a chain: a virtualised
// table (sort and filter by type, pid, tid, fd, cpu, duration), the detail of the event
// under the cursor, and a timeline strip of the span (on-CPU, off-CPU, I/O, network).
package events

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui/common"
	"github.com/kprobe/kprobe/ui/components/eventtable"
	"github.com/kprobe/kprobe/ui/components/prompt"
	"github.com/kprobe/kprobe/ui/components/timeline"
)

// MaxEvents bounds one load: the table stays fast far beyond it, but the transfer from
// the store would not.
const MaxEvents = 200_000

type loadedMsg struct {
	page   int
	events []event.Event
	err    error
}

// Page is the events screen.
type Page struct {
	c       *common.Common
	id      int
	open    common.OpenEventsMsg
	table   *eventtable.Table
	strip   timeline.Strip
	events  []event.Event
	loaded  bool
	err     error
	detail  bool
	typing  bool
	filter  prompt.Prompt
	filtErr error
	width   int
	height  int
}

// New returns the events screen for what open names; Init loads it.
func New(c *common.Common, open common.OpenEventsMsg) *Page {
	p := &Page{c: c, id: c.NewID(), open: open, table: eventtable.New(c.Styles, c.Keys)}
	p.filter = prompt.New("/", c.Styles.Prompt)
	return p
}

// Init implements common.Page.
func (p *Page) Init() tea.Cmd {
	svc, ctx, q, id := p.c.Service, p.c.Ctx, p.open.Query, p.id
	if q.Limit == 0 {
		q.Limit = MaxEvents
	}
	return func() tea.Msg {
		evs, err := svc.Events(ctx, q)
		return loadedMsg{page: id, events: evs, err: err}
	}
}

// SetEvents shows evs as if they had been loaded (benchmarks and tests).
func (p *Page) SetEvents(evs []event.Event) { p.loadedEvents(evs) }

// Table is the page's table (for tests).
func (p *Page) Table() *eventtable.Table { return p.table }

// Title implements common.Page.
func (p *Page) Title() string { return "events · " + p.open.Title }

// Capturing implements common.Page.
func (p *Page) Capturing() bool { return p.typing }

// Subject implements common.Page.
func (p *Page) Subject() (investigate.Ref, bool) {
	return p.open.Ref, p.open.Ref.ID != "" || p.open.Ref.TraceID != ""
}

func (p *Page) detailHeight() int {
	if !p.detail {
		return 0
	}
	return min(10, p.height/2)
}

// SetSize implements common.Page.
func (p *Page) SetSize(w, h int) {
	p.width, p.height = w, h
	p.filter.SetWidth(w)
	// a title line, the strip and its caret line; the prompt line when filtering.
	p.table.SetSize(w, h-3-p.detailHeight()-1)
	p.computeStrip()
}

func (p *Page) computeStrip() {
	from, to := p.open.SpanFrom, p.open.SpanTo
	if from == 0 && to == 0 && len(p.events) > 0 {
		from = p.events[0].TsNs
		last := p.events[len(p.events)-1]
		to = last.TsNs + int64(last.DurNs) + 1
	}
	p.strip = timeline.Compute(p.events, from, to, max(p.width-2, 1))
}

func (p *Page) loadedEvents(evs []event.Event) {
	p.events, p.loaded = evs, true
	base := p.open.SpanFrom
	if base == 0 && len(evs) > 0 {
		base = evs[0].TsNs
	}
	p.table.SetEvents(evs, p.open.Marked, base)
	if len(p.open.Marked) > 0 {
		// The evidence is usually the slowest: put it on top.
		p.table.Sort(eventtable.ColDur, true)
		p.table.Top()
	}
	p.computeStrip()
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
			p.loadedEvents(msg.events)
		}
	case tea.KeyPressMsg:
		return p, p.key(msg)
	}
	return p, nil
}

func (p *Page) key(msg tea.KeyPressMsg) tea.Cmd {
	k := p.c.Keys
	if p.typing {
		switch p.filter.Update(msg) {
		case prompt.Submitted:
			p.typing = false
			if err := p.table.SetFilter(p.filter.Value()); err != nil {
				p.filtErr = err
				return common.Fail(err)
			}
			p.filtErr = nil
			return common.Status(fmt.Sprintf("%d of %d events match", p.table.Len(), p.table.Total()))
		case prompt.Cancelled:
			p.typing = false
			p.filter.SetValue(p.table.Filter())
		}
		return nil
	}
	switch {
	case key.Matches(msg, k.Filter):
		p.typing = true
		p.filter.SetValue(p.table.Filter())
	case key.Matches(msg, k.Detail):
		p.detail = !p.detail
		p.SetSize(p.width, p.height)
	case key.Matches(msg, k.Replay):
		return p.replay()
	case key.Matches(msg, k.Report):
		if ref, ok := p.Subject(); ok {
			return common.Cmd(common.OpenReportMsg{Ref: ref})
		}
	default:
		p.table.Update(msg)
	}
	return nil
}

func (p *Page) replay() tea.Cmd {
	e := p.table.Selected()
	if e == nil {
		return nil
	}
	return common.Cmd(common.OpenReplayMsg{Ref: p.open.Ref,
		Process: investigate.Process{Node: e.Node, PID: e.PID, Comm: e.Comm}})
}

// ShortHelp implements help.KeyMap.
func (p *Page) ShortHelp() []key.Binding {
	k := p.c.Keys
	return []key.Binding{k.Filter, k.Sort, k.Reverse, k.Detail, k.Replay, k.Back, k.Help}
}

// FullHelp implements help.KeyMap.
func (p *Page) FullHelp() [][]key.Binding {
	k := p.c.Keys
	return [][]key.Binding{{k.Filter, k.Sort, k.Reverse, k.Detail, k.Replay, k.Report}, k.Moves(), k.Global()}
}

// View implements common.Page.
func (p *Page) View() string {
	st := p.c.Styles
	switch {
	case p.err != nil:
		return st.Error.Render(ansi.Wordwrap("reading events: "+p.err.Error(), p.width, ""))
	case !p.loaded:
		return st.Muted.Render("loading kernel events…")
	}
	col, desc := p.table.SortState()
	order := "▲"
	if desc {
		order = "▼"
	}
	head := fmt.Sprintf("%d of %d events", p.table.Len(), p.table.Total())
	if n := len(p.open.Marked); n > 0 {
		head += fmt.Sprintf(" · ★ %d evidence", n)
	}
	head += fmt.Sprintf(" · sort %s%s", sortName(col), order)
	if f := p.table.Filter(); f != "" {
		head += " · filter " + f
	}
	if p.table.Total() >= MaxEvents {
		head += fmt.Sprintf(" · first %d loaded", MaxEvents)
	}
	caret := ""
	if e := p.table.Selected(); e != nil {
		caret = p.strip.Caret(e.TsNs)
	}
	// The legend goes on the caret's line, on the side away from the caret.
	legend := timeline.Legend(st)
	lw, cw := ansi.StringWidth(legend), ansi.StringWidth(caret)
	switch {
	case p.width-2-cw-lw > 0:
		caret += strings.Repeat(" ", p.width-2-cw-lw) + legend
	case cw-1 > lw+1:
		caret = legend + caret[len(caret)-(cw-lw):]
	}
	lines := []string{
		ansi.Truncate(head, p.width, "…"),
		"▕" + p.strip.View(st) + "▏",
		" " + ansi.Truncate(caret, p.width-1, ""),
		p.table.View(),
	}
	if p.detail {
		lines = append(lines, p.detailView())
	}
	body := strings.Join(lines, "\n")
	if p.typing {
		body = fitHeight(body, p.height-1) + "\n" + p.filter.View()
	}
	return body
}

func sortName(c eventtable.Column) string {
	return [...]string{"+ms", "type", "pid", "tid", "cpu", "fd", "dur"}[c]
}

// fitHeight pads or cuts s to exactly h lines.
func fitHeight(s string, h int) string {
	lines := strings.Split(s, "\n")
	for len(lines) < h {
		lines = append(lines, "")
	}
	return strings.Join(lines[:max(h, 0)], "\n")
}

// detailView shows every field of the event under the cursor.
func (p *Page) detailView() string {
	st := p.c.Styles
	e := p.table.Selected()
	h := p.detailHeight()
	rule := st.Muted.Render(strings.Repeat("─", max(p.width, 1)))
	if e == nil {
		return rule
	}
	fields := detailFields(e)
	// Two columns of "name value" when there is room.
	cols := 1
	if p.width >= 90 {
		cols = 2
	}
	colW := p.width / cols
	rows := (len(fields) + cols - 1) / cols
	out := []string{rule}
	for r := 0; r < rows && len(out) < h; r++ {
		var line strings.Builder
		for c := range cols {
			i := c*rows + r
			if i >= len(fields) {
				break
			}
			cell := fmt.Sprintf("%-10s %s", fields[i][0], fields[i][1])
			line.WriteString(ansi.Truncate(fmt.Sprintf("%-*s", colW, cell), colW, "…"))
		}
		out = append(out, strings.TrimRight(line.String(), " "))
	}
	return strings.Join(out, "\n")
}

func detailFields(e *event.Event) [][2]string {
	f := [][2]string{
		{"what", investigate.Describe(e)},
		{"time", investigate.Stamp(e.TsNs)},
		{"duration", investigate.HumanDuration(int64(e.DurNs))},
		{"process", fmt.Sprintf("%s pid %d tid %d on %s cpu %d", e.Comm, e.PID, e.TID, e.Node, e.CPU)},
		{"span", fmt.Sprintf("%s (%s, joined by %s)", orDash(e.SpanName), orDash(e.Service), orDash(e.Join))},
		{"trace", orDash(e.TraceID)},
		{"event id", fmt.Sprint(e.ID)},
	}
	for k, v := range sortedAttrs(e.Attrs) {
		f = append(f, [2]string{k, v})
	}
	return f
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
