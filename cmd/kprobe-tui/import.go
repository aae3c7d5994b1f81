package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kprobe/kprobe/pipeline/dataset"
	"github.com/kprobe/kprobe/pipeline/eventlog"
)

// runImport loads a recorded incident (a dataset, such as the one in testdata/demo) into
// the embedded stores under --data, through the same engine as a live recording.
func runImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var data string
	fs.StringVar(&data, "data", "", "data directory of the embedded default to load into (required)")
	fs.Usage = func() { fmt.Fprint(stderr, "usage: kprobe-tui import --data DIR DATASET\n") }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if data == "" || fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("give --data DIR and one dataset file")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	d, err := dataset.Read(f)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	store, err := eventlog.OpenEmbedded(ctx, eventlog.EmbeddedDir(data), eventlog.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	st, err := dataset.Import(ctx, store, d, dataset.ImportOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %q (recorded %s on %s, kernel %s): %d spans, %d events written, %d joined to a span\n",
		d.Meta.Title, d.Meta.RecordedAt, d.Meta.Node, d.Meta.Kernel, len(d.Spans), st.Written,
		st.Correlator.JoinedTID+st.Correlator.JoinedPID+st.Correlator.JoinedThreadName+st.Correlator.JoinedOnCPU+st.Correlator.JoinedPeerPID)
	return nil
}
