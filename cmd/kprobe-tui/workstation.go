package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/term"

	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/cmd/internal/wire"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui"
)

// runWorkstation opens the interactive workstation (kprobe-tui with no subcommand).
func runWorkstation(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kprobe-tui", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage, "\nflags of the workstation:\n"); fs.PrintDefaults() }
	var src wire.Source
	src.Register(fs)
	var settlement, payment, exportDir, debugLog, replayProgram string
	var refresh time.Duration
	fs.StringVar(&settlement, "settlement", "", "open on this settlement's causal chain")
	fs.StringVar(&payment, "payment", "", "open on this payment's causal chain")
	fs.StringVar(&exportDir, "export-dir", ".", "where e writes incident reports")
	fs.StringVar(&debugLog, "debug-log", os.Getenv("KPROBE_TUI_LOG"), "write debug logs to this file (never to the terminal)")
	fs.StringVar(&replayProgram, "replay-program", os.Getenv("KPROBE_REPLAY_PROGRAM"), "the command the replay form proposes to run in place of the recorded process")
	fs.DurationVar(&refresh, "refresh", 2*time.Second, "how often the start screen re-reads the recent window (0: never)")
	rest, err := cli.ParseArgs(fs, args, stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unknown command %q (see kprobe-tui help)", rest[0])
	}
	if settlement != "" && payment != "" {
		return fmt.Errorf("give --settlement or --payment, not both")
	}
	if f, ok := stdout.(*os.File); !ok || !term.IsTerminal(f.Fd()) {
		return fmt.Errorf("the workstation needs a terminal; in scripts use the subcommands (kprobe-tui help)")
	}
	if st, err := os.Stat(exportDir); err != nil || !st.IsDir() {
		return fmt.Errorf("--export-dir %s: not a directory", exportDir)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if debugLog != "" {
		f, err := os.OpenFile(debugLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("--debug-log: %w", err)
		}
		defer f.Close()
		logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	svc, err := src.Open(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	// A source that cannot answer is one line here, not an error screen.
	if _, err := svc.Subjects(ctx, investigate.SubjectQuery{Limit: 1, Uncounted: true}); err != nil {
		return err
	}
	opts := ui.Options{Service: svc, ExportDir: exportDir, Source: src.Flags(), Logger: logger, Refresh: refresh,
		ReplayProgram: replayProgram}
	if refresh == 0 {
		opts.Refresh = -1
	}
	switch {
	case settlement != "":
		opts.Open = &investigate.Ref{Kind: investigate.KindSettlement, ID: settlement}
	case payment != "":
		opts.Open = &investigate.Ref{Kind: investigate.KindPayment, ID: payment}
	}
	opts.Replayer = replayer(svc)
	p := tea.NewProgram(ui.New(ctx, opts), tea.WithContext(ctx), tea.WithOutput(stdout))
	if _, err := p.Run(); err != nil && !errors.Is(err, tea.ErrProgramKilled) {
		return fmt.Errorf("workstation: %w", err)
	}
	return nil
}
