package common

import (
	tea "charm.land/bubbletea/v2"

	"github.com/kprobe/kprobe/pipeline/investigate"
)

// Messages pages send to the root to move between screens. Each is a small named type;
// loads are tea.Cmds that answer with their own typed messages (see each page).

// OpenSubjectMsg opens the causal chain of one business object.
type OpenSubjectMsg struct{ Ref investigate.Ref }

// OpenEventsMsg opens the kernel events behind one node of a chain.
type OpenEventsMsg struct {
	Title string
	Query investigate.EventQuery
	// Marked are event IDs to flag (a cause's evidence).
	Marked []uint64
	// SpanFrom/SpanTo bound the timeline strip (0: the events' own extent).
	SpanFrom, SpanTo int64
	Ref              investigate.Ref
}

// OpenReplayMsg opens the replay page for the process behind a subject.
type OpenReplayMsg struct {
	Ref     investigate.Ref
	Subject investigate.Subject
	// Process is replayed from its start, served its whole recording: the program run in
	// its place starts from the beginning too, and needs what the process did before the
	// subject's span (its opens, connects, the input it read) as much as what it did in it.
	Process investigate.Process
}

// OpenReportMsg opens the report preview of a subject.
type OpenReportMsg struct{ Ref investigate.Ref }

// ExportMsg asks the root to write the incident report of a subject.
type ExportMsg struct{ Ref investigate.Ref }

// StatusMsg puts one line in the status bar (an error when Err is set).
type StatusMsg struct {
	Text string
	Err  error
}

// Cmd wraps a message in a command, for pages that answer a key with a message.
func Cmd(msg tea.Msg) tea.Cmd { return func() tea.Msg { return msg } }

// Status returns a command that shows text in the status bar.
func Status(text string) tea.Cmd { return Cmd(StatusMsg{Text: text}) }

// Fail returns a command that shows an error in the status bar.
func Fail(err error) tea.Cmd { return Cmd(StatusMsg{Err: err}) }

// ExperimentMsg says a replay run finished (already recorded in Common), so a report
// preview can include it.
type ExperimentMsg struct {
	Ref        investigate.Ref
	Experiment investigate.Experiment
}

// BackMsg leaves the page in view, as esc does.
type BackMsg struct{}
