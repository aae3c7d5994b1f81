package ui

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/exp/teatest/v2"

	"github.com/kprobe/kprobe/pipeline/investigate/investigatetest"
	"github.com/kprobe/kprobe/ui/internal/replaytest"
)

// probe wraps the workstation in a real bubbletea program (teatest) and publishes the
// screen after every Update, so a test waits on what the screen shows rather than on
// time. The screen is drawn through the ASCII colour profile, as NO_COLOR shows it.
type probe struct {
	ui      *UI
	screens chan string
}

func (p *probe) Init() tea.Cmd { return p.ui.Init() }

func (p *probe) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	_, cmd := p.ui.Update(msg)
	s := plainText(ascii(p.ui.Render()))
	select {
	case <-p.screens:
	default:
	}
	p.screens <- s
	return p, cmd
}

func (p *probe) View() tea.View { return p.ui.View() }

func ascii(s string) string {
	var b bytes.Buffer
	w := colorprofile.Writer{Forward: &b, Profile: colorprofile.ASCII}
	w.Write([]byte(s))
	return b.String()
}

type session struct {
	t      *testing.T
	tm     *teatest.TestModel
	p      *probe
	svc    *investigatetest.Service
	screen string
}

type sessionOpt func(*Options)

// open runs a workstation over the fixture incident at w x h.
func open(t *testing.T, w, h int, opts ...sessionOpt) *session {
	t.Helper()
	svc := investigatetest.New(200)
	o := Options{Service: svc, Replayer: &replaytest.Replayer{Service: svc}, Refresh: -1,
		Source: "--data /var/lib/kprobe", ExportDir: t.TempDir(), ReplayProgram: "bin/kprobe-demo --settlements 1"}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := &probe{ui: New(ctx, o), screens: make(chan string, 1)}
	tm := teatest.NewTestModel(t, p, teatest.WithInitialTermSize(w, h),
		teatest.WithProgramOptions(tea.WithColorProfile(colorprofile.ASCII)))
	s := &session{t: t, tm: tm, p: p, svc: svc}
	t.Cleanup(func() {
		tm.Quit()
		tm.WaitFinished(t, teatest.WithFinalTimeout(10*time.Second))
	})
	return s
}

// waitFor waits until the screen satisfies cond and returns it.
func (s *session) waitFor(what string, cond func(screen string) bool) string {
	s.t.Helper()
	deadline := time.After(90 * time.Second) // a bound for failure, not a timing claim: the machine is shared
	for {
		if cond(s.screen) {
			return s.screen
		}
		select {
		case s.screen = <-s.p.screens:
		case <-deadline:
			s.t.Fatalf("waiting for %s; the screen is:\n%s", what, s.screen)
		}
	}
}

// waitText waits until the screen shows every one of texts.
func (s *session) waitText(texts ...string) string {
	s.t.Helper()
	return s.waitFor(strings.Join(texts, ", "), func(screen string) bool {
		plain := plainText(screen)
		for _, t := range texts {
			if !strings.Contains(plain, t) {
				return false
			}
		}
		return true
	})
}

func (s *session) typ(text string) { s.tm.Type(text) }

func (s *session) press(keys ...string) {
	for _, k := range keys {
		s.tm.Send(keyMsg(k))
	}
}

// keyMsg builds the key press a terminal sends for a key name.
func keyMsg(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	case "ctrl+c", "ctrl+u":
		return tea.KeyPressMsg{Code: rune(k[5]), Mod: tea.ModCtrl}
	}
	r := []rune(k)[0]
	return tea.KeyPressMsg{Code: r, Text: k}
}

// next moves the replay form to its next field: enter, then wait until the field titled
// title has the focus (huh moves it through a command, so keys typed before that would
// land in the previous field).
func (s *session) next(title string) {
	s.t.Helper()
	s.press("enter")
	if title != "" {
		s.waitText("┃ " + title)
	}
}

// replay runs one replay from the chain screen with the given delay and errno answers.
func (s *session) replay(delay, errno string) {
	s.t.Helper()
	s.waitText("┃ Program")
	s.next("Delay a syscall")
	s.typ(delay)
	s.next("Inject an error")
	s.typ(errno)
	s.next("Change a timeout")
	s.next("Timing")
	s.next("")
}
