// Package tree is a collapsible tree with a cursor, drawn with guide lines
// (├─ └─ │), for the causal chain: subject → causes → the path down to the resource.
package tree

import (
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/kprobe/kprobe/ui/components/window"
	"github.com/kprobe/kprobe/ui/keymap"
	"github.com/kprobe/kprobe/ui/styles"
)

// Node is one line of the tree. Text is drawn after the guides; Data is the caller's.
type Node struct {
	Text     string
	Children []*Node
	Expanded bool
	Data     any
}

type row struct {
	node   *Node
	prefix string
}

// Tree is a cursor over the visible nodes of a forest.
type Tree struct {
	st    *styles.Styles
	keys  *keymap.KeyMap
	roots []*Node
	rows  []row
	win   window.Window
	width int
}

// New returns an empty tree.
func New(st *styles.Styles, keys *keymap.KeyMap) *Tree { return &Tree{st: st, keys: keys} }

// SetRoots replaces the forest; the cursor goes to the top.
func (t *Tree) SetRoots(roots ...*Node) {
	t.roots = roots
	t.flatten()
	t.win.Goto(0)
}

// SetSize gives the tree its room.
func (t *Tree) SetSize(w, h int) {
	t.width = w
	t.win.SetHeight(h)
}

// Selected is the node under the cursor (nil for an empty tree).
func (t *Tree) Selected() *Node {
	if t.win.Cursor < len(t.rows) {
		return t.rows[t.win.Cursor].node
	}
	return nil
}

// Select moves the cursor to n if it is visible.
func (t *Tree) Select(n *Node) {
	for i, r := range t.rows {
		if r.node == n {
			t.win.Goto(i)
		}
	}
}

// Update handles movement, expand and collapse; it reports whether the key was the tree's.
func (t *Tree) Update(msg tea.KeyPressMsg) bool {
	n := t.Selected()
	switch {
	case n != nil && key.Matches(msg, t.keys.Expand):
		if len(n.Children) > 0 {
			n.Expanded = true
			t.flatten()
		}
	case n != nil && key.Matches(msg, t.keys.Collapse):
		if n.Expanded {
			n.Expanded = false
			t.flatten()
		} else if p := t.parent(n); p != nil {
			t.Select(p)
		}
	default:
		return t.win.HandleKey(msg, t.keys)
	}
	return true
}

// KeyBindings are the tree's keys, for help.
func (t *Tree) KeyBindings() []key.Binding {
	return append(t.keys.Moves(), t.keys.Expand, t.keys.Collapse)
}

func (t *Tree) parent(n *Node) *Node {
	var find func(p *Node, kids []*Node) *Node
	find = func(p *Node, kids []*Node) *Node {
		for _, k := range kids {
			if k == n {
				return p
			}
			if f := find(k, k.Children); f != nil {
				return f
			}
		}
		return nil
	}
	return find(nil, t.roots)
}

func (t *Tree) flatten() {
	t.rows = t.rows[:0]
	var walk func(nodes []*Node, indent string, top bool)
	walk = func(nodes []*Node, indent string, top bool) {
		for i, n := range nodes {
			last := i == len(nodes)-1
			prefix, next := indent, indent
			if !top {
				if last {
					prefix, next = indent+"└─ ", indent+"   "
				} else {
					prefix, next = indent+"├─ ", indent+"│  "
				}
			}
			t.rows = append(t.rows, row{node: n, prefix: prefix})
			if n.Expanded {
				walk(n.Children, next, false)
			}
		}
	}
	walk(t.roots, "", true)
	t.win.SetLen(len(t.rows))
}

// View draws the visible rows; the selected one in reverse video with a "›" marker.
func (t *Tree) View() string {
	var b strings.Builder
	from, to := t.win.Visible()
	for i := from; i < to; i++ {
		r := t.rows[i]
		fold := "  "
		if len(r.node.Children) > 0 {
			fold = "▸ "
			if r.node.Expanded {
				fold = "▾ "
			}
		}
		mark := "  "
		if i == t.win.Cursor {
			mark = "› "
		}
		line := clip(mark+r.prefix+fold+r.node.Text, t.width)
		if i == t.win.Cursor {
			line = t.st.Selected.Render(line)
		}
		if i > from {
			b.WriteByte('\n')
		}
		b.WriteString(line)
	}
	return b.String()
}

// clip cuts a line (which may hold styles) to w cells.
func clip(s string, w int) string {
	if w <= 0 {
		return s
	}
	return ansi.Truncate(s, w, "…")
}
