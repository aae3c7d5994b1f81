package investigate

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/kprobe/kprobe/pipeline/event"
)

// The incident report: one use case that the workstation's `e`, `kprobe-tui report` and
// the API's GetReport share. BuildReport gathers what the report says; Markdown (in
// report_markdown.go) writes it.

// Experiment is one replay run as the report records it: the tweaks tried against the
// recorded incident and what the program then did.
type Experiment struct {
	Tweaks     []string `json:"tweaks"`
	Timing     string   `json:"timing,omitempty"` // recorded, fast, scaled:N
	ExitCode   int      `json:"exit_code"`
	Err        string   `json:"error,omitempty"` // the run could not finish (not the program's exit)
	DurationNs int64    `json:"duration_ns"`
	Served     int      `json:"served"`    // syscalls answered from the event log
	Native     int      `json:"native"`    // syscalls that ran against the kernel
	Tweaked    int      `json:"tweaked"`   // served with a tweak applied
	Divergent  int      `json:"divergent"` // the program asked for what the recording lacks
	// FirstDivergence describes the first divergent syscall, if any.
	FirstDivergence string `json:"first_divergence,omitempty"`
	// Command runs the same experiment again from a shell.
	Command string `json:"command,omitempty"`
}

// ReportOptions says what to put in a report beyond the chain itself.
type ReportOptions struct {
	// Experiments are the replay runs made during the investigation, in order.
	Experiments []Experiment
	// Source is how the data was opened, as flags ("--data /var/lib/kprobe",
	// "--api host:8443"), for the commands that reproduce each view.
	Source string
	// EvidenceRows is how many kernel events are shown per cause (default 5).
	EvidenceRows int
}

func (o ReportOptions) withDefaults() ReportOptions {
	if o.EvidenceRows <= 0 {
		o.EvidenceRows = 5
	}
	return o
}

// Report is everything an incident report says about one subject.
type Report struct {
	Chain Chain
	// Evidence holds, per cause (same order as Chain.Causes), its slowest kernel events.
	Evidence [][]Evidence
	// EvidenceTotal is how many events each cause's evidence names in all.
	EvidenceTotal []int
	Experiments   []Experiment
	Source        string
}

// Evidence is one kernel event behind a cause, reduced to what a report table shows.
type Evidence struct {
	ID         uint64 `json:"id"`
	TsNs       int64  `json:"ts_ns"`
	Type       string `json:"type"`
	PID        uint32 `json:"pid"`
	TID        uint32 `json:"tid"`
	CPU        uint32 `json:"cpu"`
	DurationNs int64  `json:"duration_ns"`
	What       string `json:"what"`
}

// BuildReport answers "what happened to this subject, and what did we try": the chain,
// the slowest evidence events of each cause, and the replay experiments given.
func BuildReport(ctx context.Context, svc Service, ref Ref, opts ReportOptions) (Report, error) {
	opts = opts.withDefaults()
	chain, err := svc.Chain(ctx, ref)
	if err != nil {
		return Report{}, fmt.Errorf("report: %w", err)
	}
	r := Report{
		Chain:         chain,
		Evidence:      make([][]Evidence, len(chain.Causes)),
		EvidenceTotal: make([]int, len(chain.Causes)),
		Experiments:   opts.Experiments,
		Source:        opts.Source,
	}
	for i, c := range chain.Causes {
		ids, err := parseIDs(c.Evidence)
		if err != nil {
			return Report{}, fmt.Errorf("report: cause %d: %w", c.Rank, err)
		}
		r.EvidenceTotal[i] = len(ids)
		if len(ids) == 0 {
			continue
		}
		evs, err := svc.Events(ctx, EventQuery{IDs: ids})
		if err != nil {
			return Report{}, fmt.Errorf("report: evidence of cause %d: %w", c.Rank, err)
		}
		slices.SortStableFunc(evs, func(a, b event.Event) int { return cmp.Compare(b.DurNs, a.DurNs) })
		for _, e := range evs[:min(len(evs), opts.EvidenceRows)] {
			r.Evidence[i] = append(r.Evidence[i], Evidence{
				ID: e.ID, TsNs: e.TsNs, Type: e.Type.String(), PID: e.PID, TID: e.TID,
				CPU: e.CPU, DurationNs: int64(e.DurNs), What: Describe(&e),
			})
		}
	}
	return r, nil
}

func parseIDs(ss []string) ([]uint64, error) {
	ids := make([]uint64, 0, len(ss))
	for _, s := range ss {
		var id uint64
		if _, err := fmt.Sscan(s, &id); err != nil {
			return nil, fmt.Errorf("evidence id %q is not a decimal event id", s)
		}
		ids = append(ids, id)
	}
	return ids, nil
}
