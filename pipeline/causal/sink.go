package causal

import (
	"context"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// Store is the event-log writer that Sink wraps (the engine's store).
type Store interface {
	Insert(ctx context.Context, events []event.Event) error
	InsertSpans(ctx context.Context, spans []span.Span) error
}

// Sink fans the engine's writes out to the causal engine once the event log has taken
// them: the engine loop stays as it is, and what the causal engine sees is exactly what
// the event log holds.
type Sink struct {
	Next   Store
	Engine *Engine
}

// Insert writes events to the event log, then hands them to the causal engine.
func (s Sink) Insert(ctx context.Context, events []event.Event) error {
	if err := s.Next.Insert(ctx, events); err != nil {
		return err
	}
	return s.Engine.AddEvents(ctx, events)
}

// InsertSpans writes spans to the event log, then hands them to the causal engine.
func (s Sink) InsertSpans(ctx context.Context, spans []span.Span) error {
	if err := s.Next.InsertSpans(ctx, spans); err != nil {
		return err
	}
	return s.Engine.AddSpans(ctx, spans)
}
