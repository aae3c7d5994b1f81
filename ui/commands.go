package ui

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui/common"
	"github.com/kprobe/kprobe/ui/pages/events"
)

var commandHelp = [][2]string{
	{":settlement ID", "open a settlement's causal chain (also :payment, :window, :trace)"},
	{":events", "the kernel events of the subject in view"},
	{":replay", "replay the subject's process with tweaks"},
	{":report", "preview the incident report"},
	{":export", "write the incident report (same as e)"},
	{":start", "back to the start screen"},
	{":quit", "quit (same as q)"},
}

// exportedMsg says where a report was written.
type exportedMsg struct {
	path string
	err  error
}

// run executes one command line.
func (u *UI) run(line string) tea.Cmd {
	f := strings.Fields(line)
	if len(f) == 0 {
		return nil
	}
	arg := ""
	if len(f) > 1 {
		arg = strings.Join(f[1:], " ")
	}
	kinds := map[string]string{
		"settlement": investigate.KindSettlement, "s": investigate.KindSettlement,
		"payment": investigate.KindPayment, "window": investigate.KindClearingWindow,
		"clearing_window": investigate.KindClearingWindow, "order": investigate.KindOrderBookOp,
	}
	ref, haveRef := u.Top().Subject()
	switch cmd := f[0]; {
	case kinds[cmd] != "":
		if arg == "" {
			return common.Fail(fmt.Errorf(":%s needs an ID (:%s 4821)", cmd, cmd))
		}
		return common.Cmd(common.OpenSubjectMsg{Ref: investigate.Ref{Kind: kinds[cmd], ID: arg}})
	case cmd == "trace":
		if arg == "" {
			return common.Fail(fmt.Errorf(":trace needs a trace ID"))
		}
		return common.Cmd(common.OpenSubjectMsg{Ref: investigate.Ref{TraceID: arg}})
	case cmd == "q" || cmd == "quit":
		return u.quit()
	case cmd == "help":
		u.showHelp = true
		return nil
	case cmd == "start" || cmd == "home":
		u.popTo(1)
		return nil
	case !haveRef:
		return common.Fail(fmt.Errorf(":%s needs a subject: open one first (:settlement 4821)", cmd))
	case cmd == "export" || cmd == "e":
		return u.export(ref)
	case cmd == "report" || cmd == "p":
		return common.Cmd(common.OpenReportMsg{Ref: ref})
	case cmd == "replay" || cmd == "r":
		return common.Cmd(common.OpenReplayMsg{Ref: ref})
	case cmd == "events":
		return common.Cmd(common.OpenEventsMsg{Title: investigate.RefName(ref), Ref: ref,
			Query: investigate.EventQuery{Ref: ref, Limit: events.MaxEvents}})
	}
	return common.Fail(fmt.Errorf("unknown command %q (try :settlement 4821, :replay, :export, :report, :quit)", f[0]))
}

// export writes the incident report of ref into the export directory.
func (u *UI) export(ref investigate.Ref) tea.Cmd {
	svc, ctx := u.c.Service, u.c.Ctx
	opts := investigate.ReportOptions{Experiments: u.c.Experiments(ref), Source: u.c.Source}
	dir := u.c.ExportDir
	u.status, u.statusErr = "writing the report of "+investigate.RefName(ref)+"…", false
	return func() tea.Msg {
		r, err := investigate.BuildReport(ctx, svc, ref, opts)
		if err != nil {
			return exportedMsg{err: err}
		}
		path, err := filepath.Abs(filepath.Join(dir, ReportFileName(ref)))
		if err != nil {
			return exportedMsg{err: err}
		}
		if err := os.WriteFile(path, r.Markdown(), 0o644); err != nil {
			return exportedMsg{err: fmt.Errorf("writing %s: %w (set --export-dir to a writable directory)", path, err)}
		}
		return exportedMsg{path: path}
	}
}

// ReportFileName is the file `e` writes for ref: incident-settlement-4821.md.
func ReportFileName(ref investigate.Ref) string {
	name := "incident-" + ref.Kind + "-" + ref.ID
	if ref.ID == "" {
		name = "incident-trace-" + ref.TraceID
	}
	clean := strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, name)
	return clean + ".md"
}
