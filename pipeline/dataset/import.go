package dataset

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/kprobe/kprobe/pipeline/bus"
	"github.com/kprobe/kprobe/pipeline/correlate"
	"github.com/kprobe/kprobe/pipeline/engine"
	"github.com/kprobe/kprobe/pipeline/event"
)

// Store is where imported events and spans are written: the event log.
type Store = engine.Store

// ImportOptions tune an import.
type ImportOptions struct {
	Logger *slog.Logger
	// Lateness is the correlator's join window (default 2s, as standalone's).
	Lateness time.Duration
}

func (o ImportOptions) withDefaults() ImportOptions {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Lateness <= 0 {
		o.Lateness = 2 * time.Second
	}
	return o
}

// Import joins d's events to its spans with the engine a live recording runs and writes
// both to store. It returns the engine's counters.
func Import(ctx context.Context, store Store, d Dataset, opts ImportOptions) (engine.Stats, error) {
	opts = opts.withDefaults()
	batches := make([]bus.Message, 0, len(d.Events)/batchSize+1)
	for i := 0; i < len(d.Events); i += batchSize {
		evs := d.Events[i:min(i+batchSize, len(d.Events))]
		p, err := event.MarshalBatch(evs)
		if err != nil {
			return engine.Stats{}, fmt.Errorf("import: %w", err)
		}
		batches = append(batches, bus.Message{Topic: evs[0].Type.Topic(), Key: evs[0].Key(), Value: p})
	}
	// The bus holds every batch, so nothing is dropped.
	mem := bus.NewMemory(len(batches) + 1)
	eng, err := engine.New(engine.Options{Logger: opts.Logger, Source: mem, Store: store,
		Correlate: correlate.Options{Lateness: opts.Lateness}})
	if err != nil {
		return engine.Stats{}, err
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(context.WithoutCancel(ctx)) }()
	stop := func(err error) (engine.Stats, error) {
		mem.Close()
		runErr := <-done // the counters are exact once Run has returned
		return eng.Stats(), errors.Join(err, runErr)
	}
	// Spans first, and wait until the engine holds them all: events that reached the
	// correlator before their span would stay unjoined.
	for i := 0; i < len(d.Spans); i += batchSize {
		if err := eng.AddSpans(ctx, d.Spans[i:min(i+batchSize, len(d.Spans))]); err != nil {
			return stop(err)
		}
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for eng.Stats().Spans < uint64(len(d.Spans)) {
		select {
		case <-ctx.Done():
			return stop(ctx.Err())
		case <-tick.C:
		}
	}
	for _, m := range batches {
		if !mem.Publish(m) {
			return stop(errors.New("import: the bus refused a batch"))
		}
	}
	st, err := stop(nil)
	if err != nil {
		return st, fmt.Errorf("import: %w", err)
	}
	if st.Written != uint64(len(d.Events)) {
		return st, fmt.Errorf("import: wrote %d of %d events", st.Written, len(d.Events))
	}
	return st, nil
}
