package ui

import (
	"fmt"
	"testing"

	"github.com/charmbracelet/x/exp/golden"
)

// TestGoldenScreens draws every page at 80x24 and 120x40 through the ASCII profile and
// compares it with testdata/TestGoldenScreens/<page>-<size>.golden (go test -update
// rewrites them).
func TestGoldenScreens(t *testing.T) {
	pages := []struct {
		name  string
		drive func(s *session) string
	}{
		{"start", func(s *session) string { return s.waitText("4821", "slowest settlements (24)", "clearing windows (6)") }},
		{"start-typing", func(s *session) string {
			s.waitText("4821", "clearing windows (6)")
			s.typ("48")
			return s.waitText("open: 48")
		}},
		{"help", func(s *session) string {
			s.waitText("4821")
			s.typ("?")
			return s.waitText("commands", ":settlement ID")
		}},
		{"chain", func(s *session) string {
			s.waitText("4821")
			s.typ("4821")
			s.press("enter")
			return s.waitText("#1 storage", "#3 slow_peer")
		}},
		{"chain-not-found", func(s *session) string {
			s.waitText("4821")
			s.typ("999")
			s.press("enter")
			return s.waitText("not found")
		}},
		{"events", func(s *session) string {
			s.waitText("4821")
			s.typ("4821")
			s.press("enter")
			s.waitText("#1 storage")
			s.press("down", "enter")
			return s.waitText("★ 3 evidence")
		}},
		{"events-detail", func(s *session) string {
			s.waitText("4821")
			s.typ("4821")
			s.press("enter")
			s.waitText("#1 storage")
			s.press("down", "enter")
			s.waitText("★ 3 evidence")
			s.press("enter")
			return s.waitText("event id")
		}},
		{"events-filter", func(s *session) string {
			s.waitText("4821")
			s.typ("4821")
			s.press("enter")
			s.waitText("#1 storage")
			s.press("enter")
			s.waitText("200 of 200 events")
			s.typ("/type=write dur>1ms")
			s.press("enter")
			return s.waitText("filter type=write dur>1ms", "3 of 200 events match")
		}},
		{"replay-form", func(s *session) string {
			s.waitText("4821")
			s.typ("4821")
			s.press("enter")
			s.waitText("#1 storage")
			s.typ("r")
			return s.waitText("Delay a syscall")
		}},
		{"replay-run", func(s *session) string {
			s.waitText("4821")
			s.typ("4821")
			s.press("enter")
			s.waitText("#1 storage")
			s.typ("r")
			s.replay("write 200ms", "")
			return s.waitText("exit 0 after", "settlement posted")
		}},
		{"replay-compare", func(s *session) string {
			s.waitText("4821")
			s.typ("4821")
			s.press("enter")
			s.waitText("#1 storage")
			s.typ("r")
			s.replay("", "")
			s.waitText("exit 0 after")
			s.typ("n")
			s.replay("", "write EIO")
			s.waitText("exit 1 after")
			s.typ("c")
			return s.waitText("c back to the run")
		}},
		{"report", func(s *session) string {
			s.waitText("4821")
			s.typ("4821")
			s.press("enter")
			s.waitText("#1 storage")
			s.typ("p")
			return s.waitText("Incident report")
		}},
	}
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		for _, pg := range pages {
			t.Run(fmt.Sprintf("%s-%dx%d", pg.name, size[0], size[1]), func(t *testing.T) {
				s := open(t, size[0], size[1])
				golden.RequireEqual(t, pg.drive(s))
			})
		}
	}
}
