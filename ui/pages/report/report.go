// Package report is the incident-report preview: the markdown that `e` writes, rendered
// for the terminal, scrollable.
package report

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/glamour/v2"
	"charm.land/glamour/v2/styles"
	"github.com/charmbracelet/x/ansi"

	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui/common"
	"github.com/kprobe/kprobe/ui/components/window"
)

type loadedMsg struct {
	page     int
	width    int
	markdown []byte
	rendered string
	err      error
}

// Page is the report preview.
type Page struct {
	c           *common.Common
	id          int
	ref         investigate.Ref
	experiments []investigate.Experiment
	markdown    []byte
	lines       []string
	renderedAt  int // the width lines were rendered for
	loaded      bool
	err         error
	win         window.Window
	width       int
	height      int
}

// New returns the preview of ref's report with the experiments run so far.
func New(c *common.Common, ref investigate.Ref, experiments []investigate.Experiment) *Page {
	return &Page{c: c, id: c.NewID(), ref: ref, experiments: experiments}
}

// Init implements common.Page.
func (p *Page) Init() tea.Cmd { return p.load(nil) }

// load builds the report (unless md is given) and renders it for the current width.
func (p *Page) load(md []byte) tea.Cmd {
	svc, ctx, id, width, plain := p.c.Service, p.c.Ctx, p.id, max(p.width, 40), p.c.Plain
	opts := investigate.ReportOptions{Experiments: p.experiments, Source: p.c.Source}
	ref := p.ref
	return func() tea.Msg {
		if md == nil {
			r, err := investigate.BuildReport(ctx, svc, ref, opts)
			if err != nil {
				return loadedMsg{page: id, err: err}
			}
			md = r.Markdown()
		}
		out, err := Render(md, width, plain)
		return loadedMsg{page: id, width: width, markdown: md, rendered: out, err: err}
	}
}

// Render renders markdown for a terminal width cells wide; plain drops colour.
func Render(md []byte, width int, plain bool) (string, error) {
	style := styles.DarkStyle
	if plain {
		style = styles.NoTTYStyle
	}
	r, err := glamour.NewTermRenderer(glamour.WithStandardStyle(style), glamour.WithWordWrap(width-2))
	if err != nil {
		return "", fmt.Errorf("rendering the report: %w", err)
	}
	out, err := r.Render(string(md))
	if err != nil {
		return "", fmt.Errorf("rendering the report: %w", err)
	}
	return strings.TrimRight(out, "\n "), nil
}

// Title implements common.Page.
func (p *Page) Title() string { return "report · " + investigate.RefName(p.ref) }

// Capturing implements common.Page.
func (p *Page) Capturing() bool { return false }

// Subject implements common.Page.
func (p *Page) Subject() (investigate.Ref, bool) { return p.ref, true }

// Markdown is the report's markdown once loaded.
func (p *Page) Markdown() []byte { return p.markdown }

// SetSize implements common.Page.
func (p *Page) SetSize(w, h int) {
	p.width, p.height = w, h
	p.win.SetHeight(h - 1)
}

// Update implements common.Page.
func (p *Page) Update(msg tea.Msg) (common.Page, tea.Cmd) {
	switch msg := msg.(type) {
	case loadedMsg:
		if msg.page != p.id {
			return p, nil
		}
		p.err = msg.err
		if msg.err != nil {
			return p, nil
		}
		p.markdown, p.loaded, p.renderedAt = msg.markdown, true, msg.width
		p.lines = strings.Split(msg.rendered, "\n")
		p.win.SetLen(len(p.lines))
		if msg.width != max(p.width, 40) {
			return p, p.load(p.markdown) // resized while rendering
		}
	case common.ExperimentMsg:
		if msg.Ref == p.ref {
			p.experiments = append(p.experiments, msg.Experiment)
			return p, p.load(nil)
		}
	case tea.KeyPressMsg:
		p.win.HandleKey(msg, p.c.Keys)
		// The window's cursor is the top line: scroll the whole page.
		p.win.Offset = min(p.win.Cursor, max(len(p.lines)-p.win.Height, 0))
	case tea.WindowSizeMsg:
	}
	if p.loaded && p.renderedAt != max(p.width, 40) {
		p.renderedAt = max(p.width, 40)
		return p, p.load(p.markdown)
	}
	return p, nil
}

// ShortHelp implements help.KeyMap.
func (p *Page) ShortHelp() []key.Binding {
	k := p.c.Keys
	return []key.Binding{k.Down, k.Up, k.PageDown, k.Export, k.Back, k.Help}
}

// FullHelp implements help.KeyMap.
func (p *Page) FullHelp() [][]key.Binding {
	k := p.c.Keys
	return [][]key.Binding{{k.Export}, k.Moves(), k.Global()}
}

// View implements common.Page.
func (p *Page) View() string {
	st := p.c.Styles
	switch {
	case p.err != nil:
		return st.Error.Render(ansi.Wordwrap(p.err.Error(), p.width, ""))
	case !p.loaded:
		return st.Muted.Render("building the incident report…")
	}
	from := p.win.Offset
	to := min(from+p.win.Height, len(p.lines))
	pos := fmt.Sprintf("lines %d-%d of %d · e writes it to a file", from+1, to, len(p.lines))
	return st.Muted.Render(ansi.Truncate(pos, p.width, "…")) + "\n" + strings.Join(p.lines[from:to], "\n")
}
