package ui

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"

	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui/common"
	"github.com/kprobe/kprobe/ui/components/prompt"
	"github.com/kprobe/kprobe/ui/keymap"
	"github.com/kprobe/kprobe/ui/pages/chain"
	"github.com/kprobe/kprobe/ui/pages/events"
	"github.com/kprobe/kprobe/ui/pages/replay"
	"github.com/kprobe/kprobe/ui/pages/report"
	"github.com/kprobe/kprobe/ui/pages/start"
	"github.com/kprobe/kprobe/ui/styles"
)

// Options configure one workstation session.
type Options struct {
	Service  investigate.Service
	Replayer common.Replayer // nil: replay unavailable
	// Open, when set, opens the workstation on this subject's chain (esc goes to start).
	Open *investigate.Ref
	// ExportDir is where `e` writes reports (default: the working directory).
	ExportDir string
	// Source is how the data was opened, as flags, for the report's commands.
	Source string
	// ReplayProgram is the command the replay form proposes (the program to run in place
	// of the recorded process).
	ReplayProgram string
	// Refresh is how often the start screen re-reads (default 2s; negative: never).
	Refresh time.Duration
	// Logger receives debug logs; nil discards them. The workstation never logs to the
	// terminal it draws on.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.ExportDir == "" {
		o.ExportDir = "."
	}
	if o.Refresh == 0 {
		o.Refresh = 2 * time.Second
	}
	if o.Refresh < 0 {
		o.Refresh = 0
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// UI is the root model: a stack of pages (esc pops), the global keys, the command line,
// the help screen and the status bar. One UI serves one terminal; an SSH server makes
// one per session.
type UI struct {
	c         *common.Common
	opts      Options
	stack     []common.Page
	help      help.Model
	showHelp  bool
	cmdline   bool
	cmd       prompt.Prompt
	status    string
	statusErr bool
	quitting  bool
}

// New returns the workstation. ctx bounds every load it starts.
func New(ctx context.Context, opts Options) *UI {
	opts = opts.withDefaults()
	st := styles.Default()
	km := keymap.Default()
	c := &common.Common{
		Ctx: ctx, Styles: &st, Keys: &km, Service: opts.Service, Replayer: opts.Replayer,
		ExportDir: opts.ExportDir, Source: opts.Source, Logger: opts.Logger, Refresh: opts.Refresh, ReplayProgram: opts.ReplayProgram,
		Width: 80, Height: 24,
	}
	u := &UI{c: c, opts: opts, help: help.New()}
	u.help.Styles = help.Styles{
		ShortKey: st.Key, ShortDesc: st.Muted, ShortSeparator: st.Muted, Ellipsis: st.Muted,
		FullKey: st.Key, FullDesc: st.App, FullSeparator: st.Muted,
	}
	u.cmd = prompt.New(":", st.Prompt)
	u.stack = []common.Page{start.New(c)}
	return u
}

// Init implements tea.Model.
func (u *UI) Init() tea.Cmd {
	cmds := []tea.Cmd{u.stack[0].Init()}
	if u.opts.Open != nil {
		cmds = append(cmds, u.push(chain.New(u.c, *u.opts.Open)))
	}
	return tea.Batch(cmds...)
}

// Top is the page in view.
func (u *UI) Top() common.Page { return u.stack[len(u.stack)-1] }

// Status is the status bar's message (for tests).
func (u *UI) Status() string { return u.status }

func (u *UI) push(p common.Page) tea.Cmd {
	p.SetSize(u.c.Width, u.bodyHeight())
	u.stack = append(u.stack, p)
	u.status, u.statusErr = "", false
	u.c.Logger.Debug("open", "page", p.Title())
	return p.Init()
}

func (u *UI) bodyHeight() int { return max(u.c.Height-2, 1) }

// Update implements tea.Model.
func (u *UI) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		u.c.Width, u.c.Height = max(msg.Width, 20), max(msg.Height, 5)
		u.help.SetWidth(u.c.Width)
		u.cmd.SetWidth(u.c.Width)
		for _, p := range u.stack {
			p.SetSize(u.c.Width, u.bodyHeight())
		}
		return u, u.broadcast(msg)
	case tea.ColorProfileMsg:
		u.c.Plain = msg.Profile <= colorprofile.ASCII
		return u, nil
	case tea.KeyPressMsg:
		return u, u.key(msg)
	case common.OpenSubjectMsg:
		return u, u.push(chain.New(u.c, msg.Ref))
	case common.OpenEventsMsg:
		return u, u.push(events.New(u.c, msg))
	case common.OpenReplayMsg:
		return u, u.push(replay.New(u.c, msg))
	case common.OpenReportMsg:
		return u, u.push(report.New(u.c, msg.Ref, u.c.Experiments(msg.Ref)))
	case common.BackMsg:
		return u, u.back()
	case common.ExportMsg:
		return u, u.export(msg.Ref)
	case exportedMsg:
		if msg.err != nil {
			u.status, u.statusErr = "export failed: "+msg.err.Error(), true
		} else {
			u.status, u.statusErr = "report written: "+msg.path, false
		}
		return u, nil
	case common.StatusMsg:
		if msg.Err != nil {
			u.status, u.statusErr = msg.Err.Error(), true
		} else {
			u.status, u.statusErr = msg.Text, false
		}
		return u, nil
	}
	return u, u.broadcast(msg)
}

// broadcast hands a message to every page on the stack: a load started by a page below
// the top must still arrive. Pages keep only messages tagged with their own id.
func (u *UI) broadcast(msg tea.Msg) tea.Cmd {
	var cmds []tea.Cmd
	for i, p := range u.stack {
		np, cmd := p.Update(msg)
		u.stack[i] = np
		cmds = append(cmds, cmd)
	}
	return tea.Batch(cmds...)
}

func (u *UI) key(msg tea.KeyPressMsg) tea.Cmd {
	k := u.c.Keys
	if msg.String() == "ctrl+c" {
		return u.quit()
	}
	if u.cmdline {
		switch u.cmd.Update(msg) {
		case prompt.Submitted:
			u.cmdline = false
			line := u.cmd.Value()
			u.cmd.SetValue("")
			return u.run(line)
		case prompt.Cancelled:
			u.cmdline = false
			u.cmd.SetValue("")
		}
		return nil
	}
	if u.showHelp {
		if key.Matches(msg, k.Quit) {
			return u.quit()
		}
		if key.Matches(msg, k.Help, k.Back) {
			u.showHelp = false
		}
		return nil
	}
	top := u.Top()
	if !top.Capturing() {
		switch {
		case key.Matches(msg, k.Quit):
			return u.quit()
		case key.Matches(msg, k.Help):
			u.showHelp = true
			return nil
		case key.Matches(msg, k.Command):
			u.cmdline = true
			return nil
		case key.Matches(msg, k.Back):
			return u.back()
		case key.Matches(msg, k.Export):
			if ref, ok := top.Subject(); ok {
				return u.export(ref)
			}
			u.status, u.statusErr = "nothing to export here: open a settlement first", true
			return nil
		}
	}
	p, cmd := top.Update(msg)
	u.stack[len(u.stack)-1] = p
	return cmd
}

func (u *UI) back() tea.Cmd {
	if len(u.stack) > 1 {
		u.popTo(len(u.stack) - 1)
		u.status, u.statusErr = "", false
	}
	return nil
}

// closer is a page that holds something to stop when it is left (a replay run).
type closer interface{ Close() }

// popTo leaves every page above the first n.
func (u *UI) popTo(n int) {
	for _, p := range u.stack[n:] {
		if c, ok := p.(closer); ok {
			c.Close()
		}
	}
	u.stack = u.stack[:n]
}

func (u *UI) quit() tea.Cmd {
	u.quitting = true
	u.popTo(1)
	return tea.Quit
}

// View implements tea.Model.
func (u *UI) View() tea.View {
	v := tea.NewView(u.Render())
	v.AltScreen = true
	v.WindowTitle = "kprobe · " + u.Top().Title()
	return v
}

// Render draws the whole screen: header, body, status bar; exactly Width x Height.
func (u *UI) Render() string {
	if u.quitting {
		return ""
	}
	st := u.c.Styles
	w := u.c.Width
	title := st.Title.Render("kprobe") + " " + st.Subtitle.Render(u.Top().Title())
	if u.c.Source != "" {
		if pad := w - ansi.StringWidth(title) - ansi.StringWidth(u.c.Source) - 1; pad > 0 {
			title += strings.Repeat(" ", pad) + st.Muted.Render(u.c.Source)
		}
	}
	var body string
	if u.showHelp {
		body = u.helpView()
	} else {
		body = u.Top().View()
	}
	return ansi.Truncate(title, w, "…") + "\n" + fit(body, w, u.bodyHeight()) + "\n" + u.statusLine()
}

func (u *UI) statusLine() string {
	st := u.c.Styles
	w := u.c.Width
	switch {
	case u.cmdline:
		return u.cmd.View()
	case u.status != "" && u.statusErr:
		return st.Error.Render(ansi.Truncate(u.status, w, "…"))
	case u.status != "":
		return st.OK.Render(ansi.Truncate(u.status, w, "…"))
	}
	return ansi.Truncate(u.help.ShortHelpView(u.Top().ShortHelp()), w, "…")
}

func (u *UI) helpView() string {
	st := u.c.Styles
	var b strings.Builder
	b.WriteString(st.Title.Render("keys") + st.Muted.Render(" (? or esc closes)") + "\n\n")
	b.WriteString(u.help.FullHelpView(u.Top().FullHelp()))
	b.WriteString("\n\n" + st.Title.Render("commands") + "\n")
	for _, c := range commandHelp {
		b.WriteString("  " + st.Key.Render(c[0]) + "  " + c[1] + "\n")
	}
	return b.String()
}

// fit pads or cuts s to exactly h lines, each cut to w cells.
func fit(s string, w, h int) string {
	lines := strings.Split(s, "\n")
	for len(lines) < h {
		lines = append(lines, "")
	}
	lines = lines[:h]
	for i, l := range lines {
		lines[i] = ansi.Truncate(l, w, "")
	}
	return strings.Join(lines, "\n")
}
