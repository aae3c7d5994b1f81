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

	"github.com/kprobe/kprobe/cmd/internal/apiflag"
	"github.com/kprobe/kprobe/cmd/internal/datadir"
	"github.com/kprobe/kprobe/pipeline/investigate"
	"github.com/kprobe/kprobe/ui"
)

// sourceFlags say where the workstation and `report` read from: the embedded default
// under --data, or a kprobe API (--api and its TLS and token flags).
type sourceFlags struct {
	data string
	api  apiflag.Client
}

func (s *sourceFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.data, "data", os.Getenv("KPROBE_DATA"), "data directory of the embedded default (as given to 'kprobe-agent standalone --data')")
	s.api.Register(fs)
}

// flags is how the source was given, for the report's commands that reproduce a view.
func (s *sourceFlags) flags() string {
	if s.api.Set() {
		return "--api " + s.api.Addr
	}
	return "--data " + s.data
}

// open returns the use-case layer over the chosen source.
func (s *sourceFlags) open(ctx context.Context) (investigate.Service, error) {
	switch {
	case s.data != "" && s.api.Set():
		return nil, fmt.Errorf("give either --data or --api, not both")
	case s.api.Set():
		return s.api.Dial(ctx)
	case s.data != "":
		// Through the recorder's API socket while one holds the directory, else the
		// stores under it, opened per call (datadir decides each time).
		data := s.data
		r, err := datadir.New(datadir.Options{Dir: data, Open: func(ctx context.Context) (investigate.Service, error) {
			return openLocal(ctx, data)
		}})
		if err != nil {
			return nil, err
		}
		if r.API(ctx) == nil {
			// No recorder serves the directory: the stores must open here, and a caller
			// with another way in (replay reads the event log itself) needs to know now.
			svc, err := openLocal(ctx, data)
			if err != nil {
				return nil, err
			}
			svc.Close()
		}
		return r, nil
	}
	return nil, fmt.Errorf("no data given: use --data DIR (the embedded default) or --api HOST:PORT")
}

// openLocal is the use-case layer over the stores under --data.
func openLocal(ctx context.Context, data string) (investigate.Service, error) {
	sf := storeFlags{data: data}
	return sf.openDirect(ctx)
}

// runWorkstation opens the interactive workstation (kprobe-tui with no subcommand).
func runWorkstation(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kprobe-tui", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var src sourceFlags
	src.register(fs)
	var settlement, payment, exportDir, debugLog, replayProgram string
	var refresh time.Duration
	fs.StringVar(&settlement, "settlement", "", "open on this settlement's causal chain")
	fs.StringVar(&payment, "payment", "", "open on this payment's causal chain")
	fs.StringVar(&exportDir, "export-dir", ".", "where e writes incident reports")
	fs.StringVar(&debugLog, "debug-log", os.Getenv("KPROBE_TUI_LOG"), "write debug logs to this file (never to the terminal)")
	fs.StringVar(&replayProgram, "replay-program", os.Getenv("KPROBE_REPLAY_PROGRAM"), "the command the replay form proposes to run in place of the recorded process")
	fs.DurationVar(&refresh, "refresh", 2*time.Second, "how often the start screen re-reads the recent window (0: never)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unknown command %q (see kprobe-tui help)", fs.Arg(0))
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
	svc, err := src.open(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	// A source that cannot answer is one line here, not an error screen.
	if _, err := svc.Subjects(ctx, investigate.SubjectQuery{Limit: 1}); err != nil {
		return err
	}
	opts := ui.Options{Service: svc, ExportDir: exportDir, Source: src.flags(), Logger: logger, Refresh: refresh,
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
