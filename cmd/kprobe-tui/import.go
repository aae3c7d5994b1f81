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
	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/dataset"
	"github.com/kprobe/kprobe/pipeline/eventlog"
	"github.com/kprobe/kprobe/pipeline/graphstore/embedded"
)

// runImport loads a recorded incident (a dataset, such as the one in testdata/demo) into
// the embedded stores under --data, through the same engine as a live recording.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kprobe-tui import", flag.ContinueOnError)
	var data string
	fs.StringVar(&data, "data", "", "data directory of the embedded default to load into (required)")
	fs.Usage = cli.Usage(fs, "usage: kprobe-tui import --data DIR DATASET\n\n")
	rest, err := cli.ParseArgs(fs, args, stdout)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if data == "" || len(rest) != 1 {
		return fmt.Errorf("give --data DIR and one dataset file (usage: kprobe-tui import --data DIR DATASET)")
	}
	f, err := os.Open(rest[0])
	if err != nil {
		return err
	}
	defer f.Close()
	d, err := dataset.Read(f)
	if err != nil {
		return fmt.Errorf("%s: %w", rest[0], err)
	}
	if err := wire.PrivateData(data); err != nil {
		return err
	}
	store, err := eventlog.OpenEmbedded(ctx, eventlog.EmbeddedDir(data), eventlog.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	// As in 'kprobe-agent standalone': the causal engine draws each business object's
	// chain into the embedded graph once the event log has taken its events.
	graph, err := embedded.Open(ctx, embedded.Dir(data), embedded.Options{})
	if err != nil {
		return err
	}
	defer graph.Close()
	mapping, err := causal.LoadMapping("")
	if err != nil {
		return err
	}
	drawer, err := causal.NewEngine(causal.EngineOptions{Writer: graph, Mapping: mapping})
	if err != nil {
		return err
	}
	drawn := make(chan error, 1)
	go func() { drawn <- drawer.Run(context.WithoutCancel(ctx)) }()
	st, err := dataset.Import(ctx, causal.Sink{Next: store, Engine: drawer}, d, dataset.ImportOptions{})
	drawer.Close()
	if err := errors.Join(err, <-drawn); err != nil {
		return err
	}
	cs := drawer.Stats()
	fmt.Fprintf(stdout, "imported %q (recorded %s on %s, kernel %s): %d spans, %d events written, %d joined to a span, %d causal chains drawn\n",
		d.Meta.Title, d.Meta.RecordedAt, d.Meta.Node, d.Meta.Kernel, len(d.Spans), st.Written,
		st.Correlator.JoinedTID+st.Correlator.JoinedPID+st.Correlator.JoinedThreadName+st.Correlator.JoinedOnCPU+st.Correlator.JoinedPeerPID,
		cs.Drawn)
	return nil
}
