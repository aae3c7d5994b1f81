package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/kprobe/kprobe/pipeline/correlate"
	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// runSettlements prints the slowest settlements and, under each, what the kernel did
// while it ran: time per kind of kernel event and the slowest events themselves.
func runSettlements(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("settlements", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.register(fs)
	var top, events int
	var from, to string
	fs.IntVar(&top, "top", 5, "how many settlements")
	fs.IntVar(&events, "events", 3, "slowest kernel events shown per settlement")
	fs.StringVar(&from, "from", "", "only settlements starting at or after (RFC 3339 or ns)")
	fs.StringVar(&to, "to", "", "only settlements starting before (RFC 3339 or ns)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if top <= 0 {
		return fmt.Errorf("--top %d: want at least 1", top)
	}
	q := eventlog.SettlementQuery{Limit: top}
	var err error
	if q.From, err = parseTime("from", from); err != nil {
		return err
	}
	if q.To, err = parseTime("to", to); err != nil {
		return err
	}
	store, err := sf.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	sts, err := store.Settlements(ctx, q)
	if err != nil {
		return err
	}
	if len(sts) == 0 {
		fmt.Fprintln(stdout, "no settlements in the event log (were spans sent to the OTLP receiver?)")
		return nil
	}
	for i, s := range sts {
		evs, err := store.Events(ctx, eventlog.Query{AttrKey: "settlement.id", AttrValue: s.ID})
		if err != nil {
			return err
		}
		why := ""
		if len(evs) == 0 {
			if why, err = whyNoEvents(ctx, store, s); err != nil {
				return err
			}
		}
		writeSettlement(stdout, i+1, s, evs, events, why)
	}
	return nil
}

// eventQuerier is what whyNoEvents needs of the event log.
type eventQuerier interface {
	Events(ctx context.Context, q eventlog.Query) ([]event.Event, error)
}

// whyNoEvents asks the event log what the recorder had of the settlement's process, to
// say why nothing joined without blaming the recorder for events it had.
func whyNoEvents(ctx context.Context, store eventQuerier, s eventlog.Settlement) (string, error) {
	var during []event.Event
	recorded := false
	if s.Host != "" && s.PID != 0 {
		var err error
		if during, err = store.Events(ctx, eventlog.Query{Node: s.Host, PID: s.PID, From: s.StartNs, To: s.EndNs + 1, Limit: 10_000}); err != nil {
			return "", err
		}
		any, err := store.Events(ctx, eventlog.Query{Node: s.Host, PID: s.PID, Limit: 1})
		if err != nil {
			return "", err
		}
		recorded = len(any) > 0
	}
	return correlate.WhyNoEvents(s.Host, s.PID, during, recorded), nil
}

func writeSettlement(w io.Writer, rank int, s eventlog.Settlement, evs []event.Event, top int, why string) {
	dur := time.Duration(s.EndNs - s.StartNs)
	spans := "spans"
	if s.Spans == 1 {
		spans = "span"
	}
	fmt.Fprintf(w, "#%d settlement %s  %v  (%s pid %d on %s, trace %s, %d %s)\n",
		rank, s.ID, dur.Round(time.Microsecond), s.Service, s.PID, s.Host, s.TraceID, s.Spans, spans)
	if len(evs) == 0 {
		fmt.Fprintln(w, "    "+why)
		return
	}
	type agg struct {
		n   int
		dur uint64
	}
	byType := map[event.Type]*agg{}
	for i := range evs {
		a := byType[evs[i].Type]
		if a == nil {
			a = &agg{}
			byType[evs[i].Type] = a
		}
		a.n++
		a.dur += evs[i].DurNs
	}
	var parts []string
	for _, t := range event.Types() {
		if a := byType[t]; a != nil {
			parts = append(parts, fmt.Sprintf("%s %d (%v)", t, a.n, time.Duration(a.dur).Round(time.Microsecond)))
		}
	}
	fmt.Fprintf(w, "    kernel: %s\n", strings.Join(parts, ", "))
	sorted := append([]event.Event(nil), evs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].DurNs > sorted[j].DurNs })
	for _, e := range sorted[:min(top, len(sorted))] {
		fmt.Fprintf(w, "    %-12s %10v  %s  [%s]\n", e.Type, time.Duration(e.DurNs).Round(time.Microsecond), describe(&e), e.SpanName)
	}
}

// describe says in a few words what one kernel event was.
func describe(e *event.Event) string { return investigate.Describe(e) }
