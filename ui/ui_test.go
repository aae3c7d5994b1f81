package ui

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/pipeline/investigate/investigatetest"
)

func (s *session) openChain(id string) {
	s.t.Helper()
	s.waitText("slowest settlements")
	s.typ(id)
	s.press("enter")
	s.waitText("#1 storage")
}

func TestExportWritesTheReport(t *testing.T) {
	dir := t.TempDir()
	s := open(t, 80, 24, func(o *Options) { o.ExportDir = dir })
	s.openChain("4821")
	s.typ("e")
	path := filepath.Join(dir, "incident-settlement-4821.md")
	s.waitText("report written: " + path[:min(len(path), 60)])
	md, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Incident report: settlement 4821", "## Causal chain", "kprobe-tui --data /var/lib/kprobe --settlement 4821"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestExportFailureIsOneLine(t *testing.T) {
	s := open(t, 80, 24, func(o *Options) { o.ExportDir = "/nonexistent/kprobe-export" })
	s.openChain("4821")
	s.typ("e")
	s.waitText("export failed: writing /nonexistent/kprobe-export/incident-settlement-4821.md")
}

// A replay run is an experiment the exported report lists.
func TestReplayRunIsInTheReport(t *testing.T) {
	dir := t.TempDir()
	s := open(t, 100, 30, func(o *Options) { o.ExportDir = dir })
	s.openChain("4821")
	s.typ("r")
	s.replay("write 200ms", "")
	s.waitText("exit 0 after")
	s.typ("e")
	s.waitText("report written")
	md, err := os.ReadFile(filepath.Join(dir, "incident-settlement-4821.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"`syscall=write,delay=200ms`",
		"kprobe-tui replay --data /var/lib/kprobe --pid 4242 --node node-a --tweak syscall=write,delay=200ms -- bin/kprobe-demo --settlements 1"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestQuitEndsTheProgram(t *testing.T) {
	s := open(t, 80, 24)
	s.openChain("4821")
	s.typ("q")
	s.tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
	if v := s.tm.FinalModel(t).(*probe).ui.Render(); v != "" {
		t.Errorf("after q the screen is not cleared:\n%s", v)
	}
}

func TestEscGoesBack(t *testing.T) {
	s := open(t, 80, 24)
	s.openChain("4821")
	s.press("enter")
	s.waitText("events · settlement 4821")
	s.press("esc")
	s.waitText("chain · settlement 4821")
	s.press("esc")
	s.waitText("kprobe start")
	// esc at the bottom of the stack stays there.
	s.press("esc")
	s.typ("?")
	s.waitText("commands")
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		line string
		want string
	}{
		{"settlement 4821", "chain · settlement 4821"},
		{"payment PAY-98721", "chain · payment PAY-98721"},
		{"window CW-1002", "chain · clearing window CW-1002"},
		{"settlement", ":settlement needs an ID"},
		{"export", "report written: "},
		{"frobnicate", `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			s := open(t, 80, 24)
			s.waitText("slowest settlements")
			s.typ(":" + tt.line)
			s.press("enter")
			s.waitText(tt.want)
		})
	}
}

func TestCommandReplayAndReport(t *testing.T) {
	s := open(t, 80, 24)
	s.openChain("4821")
	s.typ(":report")
	s.press("enter")
	s.waitText("Incident report")
	s.typ(":replay")
	s.press("enter")
	s.waitText("Delay a syscall", "production took 812 ms", "bin/kprobe-demo --settlements 1")
}

func TestOpensOnTheGivenSubject(t *testing.T) {
	s := open(t, 80, 24, func(o *Options) {
		o.Open = &investigate.Ref{Kind: investigate.KindSettlement, ID: "4821"}
	})
	s.waitText("chain · settlement 4821", "#1 storage")
	s.press("esc")
	s.waitText("slowest settlements (24)")
}

// While a recorder runs, the start screen shows new settlements without a key press.
func TestStartScreenIsLive(t *testing.T) {
	s := open(t, 80, 24, func(o *Options) { o.Refresh = 20 * time.Millisecond })
	s.waitText("slowest settlements (24)")
	s.svc.AddSubject(investigate.Subject{Kind: investigate.KindSettlement, ID: "4900", DurationNs: 2e9,
		Status: "ok", Service: "settlement-svc", PID: 4242})
	s.waitText("slowest settlements (25)", "› 4900")
}

// countsGated is the fixture service whose counted lists wait until gate is closed.
type countsGated struct {
	*investigatetest.Service
	gate chan struct{}
}

func (g countsGated) Subjects(ctx context.Context, q investigate.SubjectQuery) ([]investigate.Subject, error) {
	if !q.Uncounted {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Service.Subjects(ctx, q)
}

// The start screen shows the list in view before its events are counted (counting scans
// the log), and the counts when they come, before reading the next list.
func TestStartScreenShowsTheListBeforeItsCounts(t *testing.T) {
	gate := make(chan struct{})
	s := open(t, 120, 40, func(o *Options) { o.Service = countsGated{o.Service.(*investigatetest.Service), gate} })
	top, err := s.svc.Subjects(context.Background(), investigate.SubjectQuery{Limit: 1})
	if err != nil || len(top) != 1 || top[0].Events <= 0 {
		t.Fatalf("the fixture's slowest settlement: %+v, %v", top, err)
	}
	row := func(screen string) string {
		for _, l := range strings.Split(screen, "\n") {
			if strings.HasPrefix(l, "› "+top[0].ID+" ") {
				return strings.TrimSpace(l)
			}
		}
		return ""
	}
	screen := s.waitText("slowest settlements (24)", "› "+top[0].ID, "failed (…)")
	if r := row(screen); !strings.HasSuffix(r, "…") {
		t.Errorf("before the counts, the row is %q: want its events shown as …", r)
	}
	close(gate)
	want := strconv.Itoa(top[0].Events)
	s.waitFor("the counts", func(screen string) bool {
		f := strings.Fields(row(screen))
		return len(f) > 0 && f[len(f)-1] == want
	})
	s.waitFor("every list read", func(screen string) bool { return !strings.Contains(screen, "(…)") })
}

func TestEventsFilterAndSort(t *testing.T) {
	s := open(t, 120, 40)
	s.openChain("4821")
	s.press("enter")
	s.waitText("200 of 200 events")
	s.typ("/type=bogus")
	s.press("enter")
	s.waitText(`filter "type=bogus": unknown event type "bogus"`)
	s.typ("/type=tcp_recv")
	s.press("enter")
	s.waitText("2 of 200 events match")
	s.typ("/")
	s.press("ctrl+u")
	s.typ("type=tcp_send")
	s.press("enter")
	screen := s.waitText("filter type=tcp_send")
	if strings.Contains(screen, "tcp_recv ") {
		t.Errorf("filtered to tcp_send, still shows tcp_recv:\n%s", screen)
	}
	s.typ("s")
	s.waitText("sort type▲")
	s.typ("S")
	s.waitText("sort type▼")
}

// Every screen fits the terminal exactly, before and after a resize.
func TestResize(t *testing.T) {
	s := open(t, 120, 40)
	s.openChain("4821")
	check := func(w, h int) {
		t.Helper()
		screen := s.waitFor("a redraw at the new size", func(sc string) bool {
			return len(strings.Split(sc, "\n")) == h
		})
		for i, l := range strings.Split(screen, "\n") {
			if ansi.StringWidth(l) > w {
				t.Errorf("line %d is %d cells wide at %dx%d: %q", i, ansi.StringWidth(l), w, h, l)
			}
		}
	}
	check(120, 40)
	s.tm.Send(tea.WindowSizeMsg{Width: 80, Height: 24})
	check(80, 24)
	s.press("enter")
	s.waitText("200 of 200 events")
	s.tm.Send(tea.WindowSizeMsg{Width: 100, Height: 30})
	check(100, 30)
}

func TestReportFileName(t *testing.T) {
	tests := []struct {
		ref  investigate.Ref
		want string
	}{
		{investigate.Ref{Kind: "settlement", ID: "4821"}, "incident-settlement-4821.md"},
		{investigate.Ref{Kind: "payment", ID: "PAY/../../x"}, "incident-payment-PAY_.._.._x.md"},
		{investigate.Ref{TraceID: "abc"}, "incident-trace-abc.md"},
	}
	for _, tt := range tests {
		if got := ReportFileName(tt.ref); got != tt.want {
			t.Errorf("ReportFileName(%+v) = %q, want %q", tt.ref, got, tt.want)
		}
	}
}
