// Package replay is the replay screen: a form for the tweaks (delay, errno injection,
// timeout, timing), then split panes with the program's output and the live syscall
// trace (served / native / tweaked / divergent), a status line with the divergence and
// the exit status, and every run side by side with production.
package replay

import (
	"context"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/huh/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui/common"
)

// subjectMsg brings the subject when the page was opened without it (:replay).
type subjectMsg struct {
	page    int
	subject investigate.Subject
	err     error
}

// startedMsg says a run began (or could not).
type startedMsg struct {
	page, run int
	updates   <-chan common.ReplayUpdate
	err       error
}

// updatesMsg carries what a run did since the last one; done when its channel closed.
type updatesMsg struct {
	page, run int
	updates   []common.ReplayUpdate
	done      bool
}

type mode int

const (
	modeForm mode = iota
	modeRun
	modeCompare
)

// Page is the replay screen of one subject's process.
type Page struct {
	c       *common.Common
	id      int
	open    common.OpenReplayMsg
	ready   bool // the subject and process are known
	err     error
	mode    mode
	answers tweaks
	form    *huh.Form
	runs    []*run
	current int
	focus   int // 0: output pane, 1: trace pane
	width   int
	height  int
}

// New returns the replay screen; Init shows the form (after loading the subject if the
// page was opened without it).
func New(c *common.Common, open common.OpenReplayMsg) *Page {
	p := &Page{c: c, id: c.NewID(), open: open}
	p.ready = open.Process.PID != 0
	return p
}

// Init implements common.Page.
func (p *Page) Init() tea.Cmd {
	if p.c.Replayer == nil {
		return nil
	}
	if !p.ready {
		svc, ctx, ref, id := p.c.Service, p.c.Ctx, p.open.Ref, p.id
		return func() tea.Msg {
			ch, err := svc.Chain(ctx, ref)
			return subjectMsg{page: id, subject: ch.Subject, err: err}
		}
	}
	return p.showForm()
}

func (p *Page) showForm() tea.Cmd {
	if p.answers.Program == "" {
		p.answers.Program = p.c.ReplayProgram
	}
	p.mode = modeForm
	p.form = newForm(&p.answers, p.width)
	return p.form.Init()
}

// Title implements common.Page.
func (p *Page) Title() string { return "replay · " + investigate.RefName(p.open.Ref) }

// Capturing implements common.Page: the form takes every key.
func (p *Page) Capturing() bool {
	return p.mode == modeForm && p.c.Replayer != nil && p.ready && p.err == nil
}

// Subject implements common.Page.
func (p *Page) Subject() (investigate.Ref, bool) { return p.open.Ref, true }

// Runs is how many runs were started (for tests).
func (p *Page) Runs() int { return len(p.runs) }

// SetSize implements common.Page.
func (p *Page) SetSize(w, h int) {
	p.width, p.height = w, h
	if p.form != nil {
		p.form.WithWidth(min(w, 72))
	}
	for _, r := range p.runs {
		r.setSize(p.paneSize())
	}
}

// paneSize is the inner size of each of the two panes.
func (p *Page) paneSize() (int, int) {
	// head, run tabs, two border rows and two status rows around the panes.
	return max((p.width-4)/2, 10), max(p.height-6, 3)
}

// Close stops any run still going (the root calls it when the page is left).
func (p *Page) Close() {
	for _, r := range p.runs {
		r.cancel()
	}
}

// Update implements common.Page.
func (p *Page) Update(msg tea.Msg) (common.Page, tea.Cmd) {
	switch msg := msg.(type) {
	case subjectMsg:
		if msg.page != p.id {
			return p, nil
		}
		if msg.err != nil {
			p.err = msg.err
			return p, nil
		}
		s := msg.subject
		p.open.Subject = s
		p.open.Process = investigate.Process{Node: s.Node, PID: s.PID, Comm: s.Comm}
		p.ready = true
		return p, p.showForm()
	case startedMsg:
		if msg.page != p.id {
			return p, nil
		}
		r := p.runs[msg.run]
		if msg.err != nil {
			r.finish(&investigate.Experiment{Tweaks: r.req.Tweaks, Timing: r.req.Timing, Err: msg.err.Error()})
			return p, p.finished(r)
		}
		r.updates = msg.updates
		return p, wait(p.id, msg.run, msg.updates)
	case updatesMsg:
		if msg.page != p.id {
			return p, nil
		}
		r := p.runs[msg.run]
		for _, u := range msg.updates {
			r.apply(u)
			if u.Done != nil {
				// The summary is the last update: record it now, not when the channel
				// closes, so `e` right after the screen shows it includes this run.
				return p, p.finished(r)
			}
		}
		if msg.done {
			if r.summary == nil {
				r.finish(&investigate.Experiment{Tweaks: r.req.Tweaks, Timing: r.req.Timing,
					Err: "the replay ended without a summary"})
			}
			return p, p.finished(r)
		}
		return p, wait(p.id, msg.run, r.updates)
	case tea.KeyPressMsg:
		return p, p.key(msg)
	}
	if p.mode == modeForm && p.form != nil {
		return p, p.updateForm(msg)
	}
	return p, nil
}

func (p *Page) updateForm(msg tea.Msg) tea.Cmd {
	m, cmd := p.form.Update(msg)
	p.form = m.(*huh.Form)
	switch p.form.State {
	case huh.StateCompleted:
		return p.startRun()
	case huh.StateAborted:
		return p.leaveForm()
	}
	return cmd
}

func (p *Page) leaveForm() tea.Cmd {
	if len(p.runs) > 0 {
		p.mode = modeRun
		return nil
	}
	return common.Cmd(common.BackMsg{})
}

func (p *Page) key(msg tea.KeyPressMsg) tea.Cmd {
	k := p.c.Keys
	if p.mode == modeForm && p.Capturing() {
		if msg.String() == "esc" {
			return p.leaveForm()
		}
		return p.updateForm(msg)
	}
	switch {
	case key.Matches(msg, k.NewRun):
		if p.ready && p.c.Replayer != nil {
			return p.showForm()
		}
	case key.Matches(msg, k.Compare):
		if p.mode == modeCompare {
			p.mode = modeRun
		} else if len(p.runs) > 0 {
			p.mode = modeCompare
		}
	case key.Matches(msg, k.Tab):
		p.focus = 1 - p.focus
	case key.Matches(msg, k.Collapse):
		p.current = max(p.current-1, 0)
	case key.Matches(msg, k.Expand):
		p.current = min(p.current+1, len(p.runs)-1)
	case key.Matches(msg, k.Report):
		return common.Cmd(common.OpenReportMsg{Ref: p.open.Ref})
	case len(p.runs) > 0:
		p.runs[p.current].key(msg, k, p.focus)
	}
	return nil
}

func (p *Page) startRun() tea.Cmd {
	req := common.ReplayRequest{Ref: p.open.Ref, Process: p.open.Process,
		Program: strings.Fields(p.answers.Program), Tweaks: p.answers.list(), Timing: p.answers.Timing}
	ctx, cancel := context.WithCancel(p.c.Ctx)
	r := newRun(len(p.runs)+1, req, cancel)
	r.setSize(p.paneSize())
	p.runs = append(p.runs, r)
	p.current, p.mode = len(p.runs)-1, modeRun
	replayer, id, n := p.c.Replayer, p.id, len(p.runs)-1
	return func() tea.Msg {
		ch, err := replayer.Start(ctx, req)
		return startedMsg{page: id, run: n, updates: ch, err: err}
	}
}

// finished records a run's outcome for the report.
func (p *Page) finished(r *run) tea.Cmd {
	x := *r.summary
	if x.Command == "" {
		x.Command = command(p.c.Source, p.open.Ref, r.req)
	}
	r.summary = &x
	p.c.Record(p.open.Ref, x)
	return common.Cmd(common.ExperimentMsg{Ref: p.open.Ref, Experiment: x})
}

// command is the shell command that runs the same replay again.
func command(source string, ref investigate.Ref, req common.ReplayRequest) string {
	if source == "" {
		source = "--data DIR"
	}
	cmd := fmt.Sprintf("kprobe-tui replay %s --pid %d", source, req.Process.PID)
	if req.Process.Node != "" {
		cmd += " --node " + req.Process.Node
	}
	for _, t := range req.Tweaks {
		cmd += " --tweak " + t
	}
	return cmd + " -- " + strings.Join(req.Program, " ")
}

// wait reads what a run did: one update (blocking), then whatever else is ready, so a
// fast run does not cost one screen update per syscall. The page re-arms it after each
// message until the channel closes.
func wait(page, run int, ch <-chan common.ReplayUpdate) tea.Cmd {
	return func() tea.Msg {
		u, ok := <-ch
		if !ok {
			return updatesMsg{page: page, run: run, done: true}
		}
		batch := []common.ReplayUpdate{u}
		for len(batch) < 512 {
			select {
			case u, ok := <-ch:
				if !ok {
					return updatesMsg{page: page, run: run, updates: batch, done: true}
				}
				batch = append(batch, u)
			default:
				return updatesMsg{page: page, run: run, updates: batch}
			}
		}
		return updatesMsg{page: page, run: run, updates: batch}
	}
}

// ShortHelp implements help.KeyMap.
func (p *Page) ShortHelp() []key.Binding {
	k := p.c.Keys
	if p.mode == modeForm {
		return []key.Binding{
			key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "next / run")),
			key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous")),
			k.Back,
		}
	}
	return []key.Binding{k.Tab, k.NewRun, k.Compare, k.Collapse, k.Expand, k.Follow, k.Export, k.Back}
}

// FullHelp implements help.KeyMap.
func (p *Page) FullHelp() [][]key.Binding {
	k := p.c.Keys
	return [][]key.Binding{{k.Tab, k.NewRun, k.Compare, k.Follow, k.Report}, {k.Collapse, k.Expand}, k.Moves(), k.Global()}
}

// View implements common.Page.
func (p *Page) View() string {
	st := p.c.Styles
	switch {
	case p.c.Replayer == nil:
		return st.Warn.Render(ansi.Wordwrap("Replay is not available in this session: the workstation was started without a replay engine (replay runs locally, on the machine that has the event log).", p.width, ""))
	case p.err != nil:
		return st.Error.Render(ansi.Wordwrap(p.err.Error(), p.width, ""))
	case !p.ready:
		return st.Muted.Render("loading the subject…")
	}
	target := fmt.Sprintf("%s pid %d on %s", p.open.Process.Comm, p.open.Process.PID, p.open.Process.Node)
	if p.open.Subject.DurationNs > 0 {
		target += " · production took " + investigate.HumanDuration(p.open.Subject.DurationNs)
		if p.open.Subject.Status == "error" {
			target += " and failed"
		}
	}
	head := st.Muted.Render(ansi.Truncate("replaying "+target, p.width, "…"))
	switch p.mode {
	case modeForm:
		return head + "\n\n" + p.form.View()
	case modeCompare:
		return head + "\n" + p.compareView()
	}
	r := p.runs[p.current]
	w, h := p.paneSize()
	left, right := st.Border, st.Border
	if p.focus == 0 {
		left = st.Focused
	} else {
		right = st.Focused
	}
	outTitle, traceTitle := "output", "syscalls"
	if p.focus == 0 {
		outTitle = "[output]"
	} else {
		traceTitle = "[syscalls]"
	}
	panes := joinPanes(
		left.Width(w+2).Height(h+2).Render(r.outputView(w, h)),
		right.Width(w+2).Height(h+2).Render(r.traceView(st, w, h)),
	)
	tabs := fmt.Sprintf("run %d of %d · %s | %s", p.current+1, len(p.runs), outTitle, traceTitle)
	return head + "\n" + ansi.Truncate(tabs, p.width, "…") + "\n" + panes + "\n" + r.statusView(st, p.width)
}

// joinPanes puts two boxes side by side.
func joinPanes(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	out := make([]string, max(len(al), len(bl)))
	for i := range out {
		var l, r string
		if i < len(al) {
			l = al[i]
		}
		if i < len(bl) {
			r = bl[i]
		}
		out[i] = l + r
	}
	return strings.Join(out, "\n")
}
