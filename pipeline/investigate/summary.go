package investigate

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/kprobe/kprobe/pipeline/correlate"
	"github.com/kprobe/kprobe/pipeline/event"
)

// KernelSummary is what the kernel did while one subject ran: the time its joined events
// took per type and the slowest of them; or, when none joined, why.
type KernelSummary struct {
	Subject Subject       `json:"subject"`
	ByType  []TypeTime    `json:"by_type"` // in event type order, the types present only
	Slowest []event.Event `json:"-"`       // longest first; ties in time order
	// Why says, when no kernel event joined the subject, why not: from what the
	// recorder had of its process, never blaming the recorder for events it had.
	Why string `json:"why,omitempty"`
}

// TypeTime is the events of one type joined to a subject.
type TypeTime struct {
	Type       event.Type `json:"-"`
	Name       string     `json:"type"`
	Events     int        `json:"events"`
	DurationNs int64      `json:"duration_ns"`
}

// whyLimit bounds the events read to explain an empty summary.
const whyLimit = 10_000

// Summarize sums up the kernel events joined to s, with its slowest n of them. It asks
// only Service's questions, so it works over the stores and over the API alike.
func Summarize(ctx context.Context, svc Service, s Subject, n int) (KernelSummary, error) {
	ref := Ref{Kind: s.Kind, ID: s.ID}
	if ref.Kind == "" || ref.ID == "" {
		ref = Ref{TraceID: s.TraceID}
	}
	evs, err := svc.Events(ctx, EventQuery{Ref: ref})
	if err != nil {
		return KernelSummary{}, err
	}
	k := KernelSummary{Subject: s}
	if len(evs) == 0 {
		k.Why, err = whyNoEvents(ctx, svc, s)
		return k, err
	}
	byType := map[event.Type]*TypeTime{}
	for i := range evs {
		t := byType[evs[i].Type]
		if t == nil {
			t = &TypeTime{Type: evs[i].Type, Name: evs[i].Type.String()}
			byType[evs[i].Type] = t
		}
		t.Events++
		t.DurationNs += int64(evs[i].DurNs)
	}
	for _, typ := range event.Types() {
		if t := byType[typ]; t != nil {
			k.ByType = append(k.ByType, *t)
		}
	}
	// The events come in time order: a stable sort keeps it among equal durations.
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].DurNs > evs[j].DurNs })
	k.Slowest = evs[:min(max(n, 0), len(evs))]
	return k, nil
}

// whyNoEvents asks what the recorder had of the subject's process while it ran.
func whyNoEvents(ctx context.Context, svc Service, s Subject) (string, error) {
	var during []event.Event
	recorded := false
	if s.Node != "" && s.PID != 0 {
		var err error
		q := EventQuery{Node: s.Node, PID: s.PID, From: s.StartNs, To: s.StartNs + s.DurationNs + 1, Limit: whyLimit}
		if during, err = svc.Events(ctx, q); err != nil {
			return "", err
		}
		any, err := svc.Events(ctx, EventQuery{Node: s.Node, PID: s.PID, Limit: 1})
		if err != nil {
			return "", err
		}
		recorded = len(any) > 0
	}
	return correlate.WhyNoEvents(s.Node, s.PID, during, recorded), nil
}

// WriteSummary writes a subject and its kernel summary as `kprobe-tui settlements`
// prints them, ranked.
func WriteSummary(w io.Writer, rank int, k KernelSummary) {
	s := k.Subject
	spans := "spans"
	if s.Spans == 1 {
		spans = "span"
	}
	fmt.Fprintf(w, "#%d %s %s  %v  (%s pid %d on %s, trace %s, %d %s)\n",
		rank, s.Kind, s.ID, roundUs(s.DurationNs), s.Service, s.PID, s.Node, s.TraceID, s.Spans, spans)
	if len(k.ByType) == 0 {
		fmt.Fprintln(w, "    "+k.Why)
		return
	}
	parts := make([]string, len(k.ByType))
	for i, t := range k.ByType {
		parts[i] = fmt.Sprintf("%s %d (%v)", t.Name, t.Events, roundUs(t.DurationNs))
	}
	fmt.Fprintf(w, "    kernel: %s\n", strings.Join(parts, ", "))
	for i := range k.Slowest {
		e := &k.Slowest[i]
		fmt.Fprintf(w, "    %-12s %10v  %s  [%s]\n", e.Type, roundUs(int64(e.DurNs)), Describe(e), e.SpanName)
	}
}

func roundUs(ns int64) time.Duration { return time.Duration(ns).Round(time.Microsecond) }
