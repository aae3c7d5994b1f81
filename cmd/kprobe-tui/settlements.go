package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/cmd/internal/wire"
	"github.com/kprobe/kprobe/pipeline/investigate"
)

// runSettlements prints the slowest settlements and, under each, what the kernel did
// while it ran: time per kind of kernel event and the slowest events themselves.
func runSettlements(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kprobe-tui settlements", flag.ContinueOnError)
	var src wire.Source
	src.Register(fs)
	var top, events int
	var from, to string
	var failed bool
	fs.IntVar(&top, "top", 5, "how many settlements")
	fs.IntVar(&events, "events", 3, "slowest kernel events shown per settlement")
	fs.StringVar(&from, "from", "", "only settlements starting at or after (RFC 3339 or ns)")
	fs.StringVar(&to, "to", "", "only settlements starting before (RFC 3339 or ns)")
	fs.BoolVar(&failed, "failed", false, "only settlements whose spans ended in error")
	if err := cli.Parse(fs, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if top <= 0 {
		return fmt.Errorf("--top %d: want at least 1", top)
	}
	if events < 0 {
		return fmt.Errorf("--events %d: want 0 (none) or more", events)
	}
	win, err := parseWindow(from, to)
	if err != nil {
		return err
	}
	q := investigate.SubjectQuery{Kind: investigate.KindSettlement, Limit: top, FailedOnly: failed, From: win.from, To: win.to}
	svc, err := src.Open(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	subjects, err := svc.Subjects(ctx, q)
	if err != nil {
		return err
	}
	if len(subjects) == 0 {
		fmt.Fprintln(stdout, "no settlements in the event log (were spans sent to the OTLP receiver?)")
		return nil
	}
	for i, s := range subjects {
		k, err := investigate.Summarize(ctx, svc, s, events)
		if err != nil {
			return err
		}
		investigate.WriteSummary(stdout, i+1, k)
	}
	return nil
}
