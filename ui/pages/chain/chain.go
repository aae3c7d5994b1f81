// Package chain is the causal-chain screen: the subject, its kernel causes ranked by the
// latency they explain (bar and share), each cause's rule, confidence, the process and
// resource it names, the "what if" duration, and its path. Enter drills into the kernel
// events behind a node.
package chain

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui/common"
	"github.com/kprobe/kprobe/ui/components/bar"
	"github.com/kprobe/kprobe/ui/components/tree"
	"github.com/kprobe/kprobe/ui/styles"
)

type loadedMsg struct {
	page  int
	chain investigate.Chain
	err   error
}

// What a tree node stands for.
type (
	subjectNode struct{}
	causeNode   struct{ cause int }
	stepNode    struct{ cause, step int }
)

// Page is the causal-chain screen of one subject.
type Page struct {
	c      *common.Common
	id     int
	ref    investigate.Ref
	chain  investigate.Chain
	loaded bool
	err    error
	tree   *tree.Tree
	width  int
	height int
}

// New returns the chain screen of ref; Init loads it.
func New(c *common.Common, ref investigate.Ref) *Page {
	if ref.Kind == "" && ref.ID != "" {
		ref.Kind = investigate.KindSettlement
	}
	return &Page{c: c, id: c.NewID(), ref: ref, tree: tree.New(c.Styles, c.Keys)}
}

// Init implements common.Page.
func (p *Page) Init() tea.Cmd {
	svc, ctx, ref, id := p.c.Service, p.c.Ctx, p.ref, p.id
	return func() tea.Msg {
		ch, err := svc.Chain(ctx, ref)
		return loadedMsg{page: id, chain: ch, err: err}
	}
}

// Title implements common.Page.
func (p *Page) Title() string { return "chain · " + investigate.RefName(p.ref) }

// Capturing implements common.Page.
func (p *Page) Capturing() bool { return false }

// Subject implements common.Page.
func (p *Page) Subject() (investigate.Ref, bool) { return p.ref, p.err == nil }

// Chain is the loaded chain (for tests).
func (p *Page) Chain() (investigate.Chain, bool) { return p.chain, p.loaded }

// SetSize implements common.Page.
func (p *Page) SetSize(w, h int) {
	p.width, p.height = w, h
	p.tree.SetSize(w, h-2)
	if p.loaded {
		p.build()
	}
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
			p.chain, p.loaded = msg.chain, true
			p.build()
		}
	case tea.KeyPressMsg:
		return p, p.key(msg)
	}
	return p, nil
}

func (p *Page) key(msg tea.KeyPressMsg) tea.Cmd {
	k := p.c.Keys
	if !p.loaded {
		return nil
	}
	switch {
	case key.Matches(msg, k.Enter):
		return p.drill()
	case key.Matches(msg, k.Replay):
		s := p.chain.Subject
		return common.Cmd(common.OpenReplayMsg{Ref: p.ref, Subject: s,
			Process: investigate.Process{Node: s.Node, PID: s.PID, Comm: s.Comm}})
	case key.Matches(msg, k.Report):
		return common.Cmd(common.OpenReportMsg{Ref: p.ref})
	default:
		p.tree.Update(msg)
	}
	return nil
}

// drill opens the kernel events behind the selected node.
func (p *Page) drill() tea.Cmd {
	n := p.tree.Selected()
	if n == nil {
		return nil
	}
	s := p.chain.Subject
	open := common.OpenEventsMsg{
		Title: investigate.RefName(p.ref), Ref: p.ref,
		Query:    investigate.EventQuery{Ref: p.ref},
		SpanFrom: s.StartNs, SpanTo: s.StartNs + s.DurationNs,
	}
	cause := -1
	switch d := n.Data.(type) {
	case causeNode:
		cause = d.cause
	case stepNode:
		cause = d.cause
		st := p.chain.Causes[d.cause].Path[d.step]
		// A step naming another process (the one that held the CPU) opens that
		// process's events during the subject.
		if st.Process != nil && st.Process.PID != s.PID {
			open.Title = fmt.Sprintf("%s pid %d during %s", st.Process.Comm, st.Process.PID, investigate.RefName(p.ref))
			open.Query = investigate.EventQuery{Node: st.Process.Node, PID: st.Process.PID, From: open.SpanFrom, To: open.SpanTo}
		}
	}
	if cause >= 0 {
		c := p.chain.Causes[cause]
		if open.Query.PID == 0 {
			open.Title = fmt.Sprintf("cause #%d %s · %s", c.Rank, c.Kind, investigate.RefName(p.ref))
		}
		for _, e := range c.Evidence {
			var id uint64
			if _, err := fmt.Sscan(e, &id); err == nil {
				open.Marked = append(open.Marked, id)
			}
		}
	}
	return common.Cmd(open)
}

func (p *Page) build() {
	sel := p.tree.Selected()
	var selData any
	if sel != nil {
		selData = sel.Data
	}
	st := p.c.Styles
	s := p.chain.Subject
	root := &tree.Node{Data: subjectNode{}, Expanded: true, Text: st.Title.Render(fmt.Sprintf("%s  %s  %s",
		investigate.RefName(investigate.Ref{Kind: s.Kind, ID: s.ID}), investigate.HumanDuration(s.DurationNs), status(s)))}
	detail := p.width - 12
	for i, c := range p.chain.Causes {
		cn := &tree.Node{Data: causeNode{cause: i}, Expanded: i == 0, Text: causeLine(st, c, p.width)}
		leaf := func(text string) *tree.Node { return &tree.Node{Data: causeNode{cause: i}, Text: text} }
		for _, l := range wrap(c.Summary, detail) {
			cn.Children = append(cn.Children, leaf(l))
		}
		cn.Children = append(cn.Children, leaf(st.Muted.Render(fmt.Sprintf("rule %s · join %s · confidence %.2f", c.Rule, orDash(c.Join), c.Confidence))))
		if c.Process != nil {
			cn.Children = append(cn.Children, leaf(fmt.Sprintf("process %s pid %d on %s", c.Process.Comm, c.Process.PID, c.Process.Node)))
		}
		if c.Resource != "" {
			cn.Children = append(cn.Children, leaf(c.Resource))
		}
		cn.Children = append(cn.Children, leaf(fmt.Sprintf("what if: %s without it (now %s)",
			investigate.HumanDuration(c.WhatIfNs), investigate.HumanDuration(s.DurationNs))))
		if len(c.Path) > 0 {
			cn.Children = append(cn.Children, pathNodes(i, c.Path))
		}
		cn.Children = append(cn.Children, leaf(st.Muted.Render(fmt.Sprintf("%d evidence events · enter to see them", len(c.Evidence)))))
		root.Children = append(root.Children, cn)
	}
	p.tree.SetRoots(root)
	// Keep the cursor on the same node across a resize.
	if selData != nil {
		var find func(n *tree.Node) bool
		find = func(n *tree.Node) bool {
			if n.Data == selData {
				p.tree.Select(n)
				return true
			}
			for _, k := range n.Children {
				if find(k) {
					return true
				}
			}
			return false
		}
		find(root)
	}
}

// pathNodes nests a cause's path, each step under the one before it.
func pathNodes(cause int, path []investigate.Step) *tree.Node {
	var top, cur *tree.Node
	for j, s := range path {
		text := s.Name
		if !strings.HasPrefix(s.Name, s.Kind) {
			text = s.Kind + " " + s.Name
		}
		if s.DurationNs > 0 {
			text += "  " + investigate.HumanDuration(s.DurationNs)
		}
		if s.Process != nil && s.Kind == "process" {
			text += fmt.Sprintf(" (pid %d)", s.Process.PID)
		}
		if s.Detail != "" {
			text += " · " + s.Detail
		}
		n := &tree.Node{Data: stepNode{cause: cause, step: j}, Text: text, Expanded: true}
		if top == nil {
			top = n
		} else {
			cur.Children = []*tree.Node{n}
		}
		cur = n
	}
	return &tree.Node{Data: causeNode{cause: cause}, Text: "path", Expanded: true, Children: []*tree.Node{top}}
}

// causeLine is a cause's row: rank, kind, the share it explains as a bar, the time, the
// confidence, and (where there is room) the duration without it.
func causeLine(st *styles.Styles, c investigate.Cause, width int) string {
	barWidth := 10
	if width >= 110 {
		barWidth = 20
	}
	line := fmt.Sprintf("#%d %-15s %s %5s %8s  conf %.2f", c.Rank, c.Kind, bar.Render(st, c.Share, barWidth),
		investigate.Percent(c.Share), investigate.HumanDuration(c.ExplainedNs), c.Confidence)
	if width >= 100 {
		line += "  what if: " + investigate.HumanDuration(c.WhatIfNs)
	}
	return line
}

func status(s investigate.Subject) string {
	if s.Status == "error" {
		return "FAILED"
	}
	return s.Status
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// wrap breaks text into lines of at most w cells.
func wrap(text string, w int) []string {
	if w < 20 {
		w = 20
	}
	return strings.Split(ansi.Wordwrap(text, w, ""), "\n")
}

// ShortHelp implements help.KeyMap.
func (p *Page) ShortHelp() []key.Binding {
	k := p.c.Keys
	return []key.Binding{k.Enter, k.Expand, k.Collapse, k.Replay, k.Report, k.Export, k.Back, k.Help}
}

// FullHelp implements help.KeyMap.
func (p *Page) FullHelp() [][]key.Binding {
	k := p.c.Keys
	return [][]key.Binding{{k.Enter, k.Expand, k.Collapse, k.Replay, k.Report}, k.Moves(), k.Global()}
}

// View implements common.Page.
func (p *Page) View() string {
	st := p.c.Styles
	var lines []string
	switch {
	case p.err != nil:
		lines = append(lines, st.Error.Render(ansi.Wordwrap(p.err.Error(), p.width, "")), "",
			st.Muted.Render("esc goes back; : opens another (:settlement ID)"))
	case !p.loaded:
		lines = append(lines, st.Muted.Render("loading the causal chain of "+investigate.RefName(p.ref)+"…"))
	default:
		s := p.chain.Subject
		var explained int64
		for _, c := range p.chain.Causes {
			explained += c.ExplainedNs
		}
		head := fmt.Sprintf("%s pid %d on %s · trace %s", orDash(s.Service), s.PID, orDash(s.Node), orDash(s.TraceID))
		sum := fmt.Sprintf("%d causes explain %s of %s", len(p.chain.Causes), investigate.HumanDuration(explained), investigate.HumanDuration(s.DurationNs))
		if len(p.chain.Causes) == 0 {
			sum = "no kernel cause found: the time is unexplained (was the process recorded?)"
		}
		lines = append(lines, st.Muted.Render(ansi.Truncate(head, p.width, "…")), ansi.Truncate(sum, p.width, "…"), p.tree.View())
	}
	return strings.Join(lines, "\n")
}
