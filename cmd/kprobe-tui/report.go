package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/cmd/internal/wire"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui/common"
)

// runReport prints (or writes) the markdown incident report of one subject.
func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kprobe-tui report", flag.ContinueOnError)
	var src wire.Source
	src.Register(fs)
	var settlement, payment, output string
	var rows int
	fs.StringVar(&settlement, "settlement", "", "settlement ID")
	fs.StringVar(&payment, "payment", "", "payment ID")
	fs.StringVar(&output, "output", "-", "write the report to this file (- : stdout)")
	fs.IntVar(&rows, "evidence", 5, "kernel events shown per cause")
	if err := cli.Parse(fs, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var ref investigate.Ref
	switch {
	case settlement != "" && payment != "":
		return fmt.Errorf("give --settlement or --payment, not both")
	case settlement != "":
		ref = investigate.Ref{Kind: investigate.KindSettlement, ID: settlement}
	case payment != "":
		ref = investigate.Ref{Kind: investigate.KindPayment, ID: payment}
	default:
		return fmt.Errorf("which report? give --settlement ID or --payment ID")
	}
	svc, err := src.Open(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	r, err := investigate.BuildReport(ctx, svc, ref, investigate.ReportOptions{Source: src.Flags(), EvidenceRows: rows})
	if err != nil {
		return err
	}
	if output == "-" {
		return r.WriteMarkdown(stdout)
	}
	if err := os.WriteFile(output, r.Markdown(), 0o644); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	fmt.Fprintln(stderr, "report written:", output)
	return nil
}

// replayer is the replay engine behind the workstation's replay screen, in a child
// process (replayworker.go).
func replayer(svc investigate.Service) common.Replayer { return workerReplayer{svc: svc} }
