package eventlog

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// Store is the event log. Writes are idempotent by event ID: inserting an event again
// leaves every query result unchanged.
type Store interface {
	Insert(ctx context.Context, events []event.Event) error
	// Events returns the events matching q, ordered by time (then ID).
	Events(ctx context.Context, q Query) ([]event.Event, error)
	// SyscallLog returns a process's read and write events with their payloads, in order,
	// for replay. node "" matches any node; from/to as in Query.
	SyscallLog(ctx context.Context, node string, pid uint32, from, to int64) ([]event.Event, error)
	// Slowest returns the n events with the largest DurNs in [from, to).
	Slowest(ctx context.Context, from, to int64, n int) ([]event.Event, error)
	// Count counts the events matching q; q.Limit is ignored.
	Count(ctx context.Context, q Query) (uint64, error)
	// InsertSpans keeps spans (idempotent by trace and span ID).
	InsertSpans(ctx context.Context, spans []span.Span) error
	// Settlements returns the slowest settlements that spans describe.
	Settlements(ctx context.Context, q SettlementQuery) ([]Settlement, error)
	Close() error
}

// Query selects events. Zero fields match anything.
type Query struct {
	Node string
	PID  uint32
	TID  uint32
	// From and To bound TsNs (wall clock ns): From inclusive, To exclusive; 0 leaves the
	// side open.
	From, To int64
	TraceID  string
	SpanID   string
	// AttrKey with AttrValue matches events whose Attrs[AttrKey] == AttrValue (e.g.
	// "settlement.id" = "4821"); AttrKey alone matches events that carry the key.
	AttrKey   string
	AttrValue string
	Types     []event.Type
	// Limit caps the result (the earliest events are kept); 0 means no limit.
	Limit int
}

// Options configures a Store.
type Options struct {
	Logger *slog.Logger
	// RetentionDays drops events older than this many days (by TsNs); 0 keeps them forever.
	RetentionDays int
	// Database holds the kernel_events table; default "kprobe".
	Database string
}

// DefaultDatabase is the database used when Options.Database is empty.
const DefaultDatabase = "kprobe"

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func (o Options) withDefaults() (Options, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	// The database name is the one identifier spliced into SQL text; keep it plain rather
	// than quote it, so it reads the same in every tool an SRE might use.
	if !identRe.MatchString(o.Database) {
		return o, fmt.Errorf("invalid database name %q: want letters, digits and _", o.Database)
	}
	if o.RetentionDays < 0 {
		return o, fmt.Errorf("invalid retention %d days: want 0 (keep forever) or more", o.RetentionDays)
	}
	return o, nil
}

// EmbeddedDir is where the embedded event log lives under a kprobe data directory (the
// --data of `kprobe-agent standalone` and `engine`, and of `kprobe-tui`).
func EmbeddedDir(data string) string { return filepath.Join(data, "events") }
