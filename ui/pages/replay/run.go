package replay

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui/common"
	"github.com/kprobe/kprobe/ui/components/window"
	"github.com/kprobe/kprobe/ui/keymap"
	"github.com/kprobe/kprobe/ui/styles"
)

// maxLines bounds what one pane keeps; the oldest lines go first.
const maxLines = 100_000

// run is one replay: what it printed, the syscalls it made, and how it ended.
type run struct {
	n       int
	req     common.ReplayRequest
	cancel  context.CancelFunc
	updates <-chan common.ReplayUpdate

	output  []string
	partial string // output after the last newline
	trace   []common.TraceLine
	counts  map[string]int
	summary *investigate.Experiment

	outWin, traceWin       window.Window
	followOut, followTrace bool
}

func newRun(n int, req common.ReplayRequest, cancel context.CancelFunc) *run {
	return &run{n: n, req: req, cancel: cancel, counts: map[string]int{}, followOut: true, followTrace: true}
}

func (r *run) setSize(w, h int) {
	r.outWin.SetHeight(h)
	r.traceWin.SetHeight(h)
	r.follow()
}

func (r *run) apply(u common.ReplayUpdate) {
	switch {
	case u.Done != nil:
		r.finish(u.Done)
	case u.Syscall != nil:
		r.trace = append(r.trace, *u.Syscall)
		r.counts[u.Syscall.Mark]++
		if len(r.trace) > maxLines {
			r.trace = r.trace[len(r.trace)-maxLines:]
		}
	case u.Output != "":
		text := r.partial + u.Output
		lines := strings.Split(text, "\n")
		r.partial = lines[len(lines)-1]
		r.output = append(r.output, lines[:len(lines)-1]...)
		if len(r.output) > maxLines {
			r.output = r.output[len(r.output)-maxLines:]
		}
	}
	r.follow()
}

func (r *run) finish(x *investigate.Experiment) {
	if r.partial != "" {
		r.output = append(r.output, r.partial)
		r.partial = ""
	}
	r.summary = x
	r.follow()
}

func (r *run) follow() {
	r.outWin.SetLen(len(r.output) + boolInt(r.partial != ""))
	r.traceWin.SetLen(len(r.trace))
	if r.followOut {
		r.outWin.Goto(r.outWin.N - 1)
	}
	if r.followTrace {
		r.traceWin.Goto(r.traceWin.N - 1)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// key scrolls the focused pane; scrolling stops following the tail, f resumes it.
func (r *run) key(msg tea.KeyPressMsg, k *keymap.KeyMap, focus int) {
	win, follow := &r.outWin, &r.followOut
	if focus == 1 {
		win, follow = &r.traceWin, &r.followTrace
	}
	if key.Matches(msg, k.Follow) {
		*follow = !*follow
		r.follow()
		return
	}
	if win.HandleKey(msg, k) {
		*follow = win.Cursor == win.N-1
	}
}

func (r *run) outputView(w, h int) string {
	lines := r.output
	if r.partial != "" {
		lines = append(lines[:len(lines):len(lines)], r.partial)
	}
	if len(lines) == 0 {
		if r.summary == nil {
			return "(no output yet)"
		}
		return "(the program printed nothing)"
	}
	from, to := visible(&r.outWin, h)
	out := make([]string, 0, to-from)
	for _, l := range lines[from:to] {
		out = append(out, ansi.Truncate(ansi.Strip(l), w, "…"))
	}
	return strings.Join(out, "\n")
}

func (r *run) traceView(st *styles.Styles, w, h int) string {
	if len(r.trace) == 0 {
		return "(no syscalls yet)"
	}
	from, to := visible(&r.traceWin, h)
	out := make([]string, 0, to-from)
	for _, t := range r.trace[from:to] {
		mark, style := markGlyph(st, t.Mark)
		out = append(out, style.Render(ansi.Truncate(mark+" "+t.Text, w, "…")))
	}
	return strings.Join(out, "\n")
}

// visible is the window of rows to draw: the tail when following, else around the cursor.
func visible(win *window.Window, h int) (int, int) {
	win.SetHeight(h)
	return win.Visible()
}

// markGlyph shows a syscall's mark without colour too: = served, · native, ~ tweaked,
// ! divergent.
func markGlyph(st *styles.Styles, mark string) (string, interface{ Render(...string) string }) {
	switch mark {
	case common.MarkServed:
		return "=", st.Served
	case common.MarkTweaked:
		return "~", st.Tweaked
	case common.MarkDivergent:
		return "!", st.Divergent
	}
	return "·", st.Native
}

func (r *run) statusView(st *styles.Styles, width int) string {
	tw := "as recorded"
	if len(r.req.Tweaks) > 0 {
		tw = strings.Join(r.req.Tweaks, ", ")
	}
	if r.req.Timing != "" && r.req.Timing != "recorded" {
		tw += " · timing " + r.req.Timing
	}
	c := r.counts
	counts := fmt.Sprintf("= served %d · native %d · ~ tweaked %d · ! divergent %d",
		c[common.MarkServed], c[common.MarkNative], c[common.MarkTweaked], c[common.MarkDivergent])
	var state string
	style := st.Muted
	switch x := r.summary; {
	case x == nil:
		state = "running…"
	case x.Err != "":
		state, style = "did not finish: "+x.Err, st.Error
	default:
		state = fmt.Sprintf("exit %d after %s", x.ExitCode, investigate.HumanDuration(x.DurationNs))
		style = st.OK
		if x.ExitCode != 0 || x.Divergent > 0 {
			style = st.Warn
		}
		if x.Divergent > 0 {
			state += fmt.Sprintf(" · diverged %d× (first: %s)", x.Divergent, x.FirstDivergence)
		}
		// The engine's own counts are the truth once it is done.
		counts = fmt.Sprintf("= served %d · native %d · ~ tweaked %d · ! divergent %d", x.Served, x.Native, x.Tweaked, x.Divergent)
	}
	line1 := ansi.Truncate("tweaks: "+tw+" · "+counts, width, "…")
	return line1 + "\n" + style.Render(ansi.Truncate(state, width, "…"))
}

// compareView puts production and every run side by side.
func (p *Page) compareView() string {
	st := p.c.Styles
	s := p.open.Subject
	prodExit := "ok"
	if s.Status == "error" {
		prodExit = "error"
	}
	rows := [][]string{
		{"", "production"},
		{"tweaks", "-"},
		{"timing", "recorded"},
		{"exit", prodExit},
		{"duration", investigate.HumanDuration(s.DurationNs)},
		{"served", "-"},
		{"native", "-"},
		{"tweaked", "-"},
		{"divergent", "-"},
	}
	for _, r := range p.runs {
		x := r.summary
		col := []string{"run " + strconv.Itoa(r.n), strings.Join(r.req.Tweaks, ", "), orDefault(r.req.Timing, "recorded")}
		switch {
		case x == nil:
			col = append(col, "running", "", "", "", "", "")
		case x.Err != "":
			col = append(col, "failed", "", "", "", "", "")
		default:
			col = append(col, strconv.Itoa(x.ExitCode), investigate.HumanDuration(x.DurationNs), strconv.Itoa(x.Served),
				strconv.Itoa(x.Native), strconv.Itoa(x.Tweaked), strconv.Itoa(x.Divergent))
		}
		if col[1] == "" {
			col[1] = "none"
		}
		for i := range rows {
			rows[i] = append(rows[i], col[i])
		}
	}
	colW := 14
	if n := len(rows[0]); n > 1 {
		colW = max(12, min(24, (p.width-10)/(n-1)))
	}
	var b strings.Builder
	for i, row := range rows {
		line := fmt.Sprintf("%-10s", row[0])
		for _, cell := range row[1:] {
			line += " " + fmt.Sprintf("%-*s", colW, ansi.Truncate(cell, colW, "…"))
		}
		line = ansi.Truncate(strings.TrimRight(line, " "), p.width, "…")
		if i == 0 {
			line = st.Header.Render(line)
		}
		b.WriteString(line + "\n")
	}
	b.WriteString("\n" + st.Muted.Render("c back to the run · h/l previous/next run · n another run"))
	return b.String()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
