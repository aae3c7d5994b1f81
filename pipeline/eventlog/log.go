package eventlog

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"path/filepath"
	"regexp"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// Log is the event log, on either engine: OpenEmbedded (chDB in this process) or
// OpenServer (a ClickHouse server). Both run the same statements over the same columns;
// only the way rows travel differs (backend). Writes are idempotent by event ID, and by
// trace and span ID for spans: inserting a row again leaves every query result unchanged.
//
// Its callers declare the part they use: the engine a writer (Insert, InsertSpans),
// replay a syscall-log reader (SyscallLog), the use cases a reader (Events, EventTotals,
// SpanGroups).
type Log struct {
	be   backend
	b    builder
	opts Options
}

// backend is how statements and rows reach one engine.
type backend interface {
	exec(ctx context.Context, sql string) error
	// insert runs into (INSERT INTO t (columns)) with the rows of b.
	insert(ctx context.Context, into string, b outgoing) error
	// query runs st, filling f and calling flush after each block of rows it decoded.
	query(ctx context.Context, st stmt, f *frame, flush func()) error
	close() error
}

// Options configures a Log.
type Options struct {
	Logger *slog.Logger
	// RetentionDays drops events older than this many days (by TsNs); 0 keeps them forever.
	RetentionDays int
	// Database holds the tables; default "kprobe".
	Database string
	// Server is how OpenServer reaches a ClickHouse server beyond its address: TLS and
	// credentials (they override those of a clickhouse:// DSN).
	Server ServerAuth
}

// ServerAuth is a ClickHouse server's TLS and credentials.
type ServerAuth struct {
	TLS      *tls.Config // nil: plaintext
	User     string
	Password string
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
	// IDs matches exactly these events. Event IDs are hashes, outside the table's sort
	// key: give a process or a time range too where one is known.
	IDs []uint64
	// Order is the order of the result, and so which events Limit keeps.
	Order Order
	// Limit caps the result; 0 means no limit.
	Limit int
}

// Order is the order of a query's events.
type Order uint8

const (
	// OrderTime is by time, then ID: Limit keeps the earliest.
	OrderTime Order = iota
	// OrderSlowest is by DurNs, largest first (then time and ID): Limit keeps the slowest.
	OrderSlowest
)

// SpanGroupQuery selects the groups of spans sharing a value of the attribute Key (the
// top N business objects of one kind: Key "settlement.id"), longest first.
type SpanGroupQuery struct {
	Key string // required
	// Value keeps only the group of this value.
	Value string
	// From and To bound the spans' start (From inclusive, To exclusive; 0 is open).
	From, To int64
	// FailedOnly keeps the groups with a span whose status is an error.
	FailedOnly bool
	Limit      int // 0: every group
}

func (l *Log) exec(ctx context.Context, sql string) error { return l.be.exec(ctx, sql) }

// queryRows runs st and decodes its rows with t.
func queryRows[R any](ctx context.Context, l *Log, t *table[R], st stmt) ([]R, error) {
	blk := t.block()
	defer t.release(blk)
	var out []R
	err := l.be.query(ctx, st, &blk.frame, func() { out = blk.appendTo(out) })
	return out, err
}

// outgoing is a batch of rows on its way to an engine: as blocks of columns (the server
// driver takes their values), or as a Native stream (chDB reads it from a file).
type outgoing interface {
	blocks() iter.Seq[*frame]
	writeNative(w io.Writer) error
	structure() string // of the Native stream, as file() wants it
}

// rowsOut is rows of R, in blocks of at most nativeBlockRows.
type rowsOut[R any] struct {
	t    *table[R]
	rows []R
}

func (o rowsOut[R]) structure() string { return o.t.structure() }

func (o rowsOut[R]) blocks() iter.Seq[*frame] {
	return func(yield func(*frame) bool) {
		blk := o.t.block()
		defer o.t.release(blk)
		for rows := o.rows; len(rows) > 0; {
			n := min(len(rows), nativeBlockRows)
			blk.reset()
			blk.put(rows[:n])
			if !yield(&blk.frame) {
				return
			}
			rows = rows[n:]
		}
	}
}

func (o rowsOut[R]) writeNative(w io.Writer) error {
	pw := proto.NewWriter(w, new(proto.Buffer))
	for f := range o.blocks() {
		if err := writeNative(pw, f); err != nil {
			return err
		}
	}
	return nil
}

// nativeBlockRows caps the rows per block, so a huge batch is encoded a slice at a time.
// It matches the engine's default max_insert_block_size. (A variable for the tests.)
var nativeBlockRows = 1 << 20

func (l *Log) queryString(ctx context.Context, st stmt) (string, error) {
	out, err := queryRows(ctx, l, texts, st)
	if err != nil || len(out) == 0 {
		return "", err
	}
	return out[0], nil
}

// Insert writes events.
func (l *Log) Insert(ctx context.Context, evs []event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	if err := l.be.insert(ctx, l.b.insertEvents(), eventsOut{rowsOut[event.Event]{events, evs}}); err != nil {
		return fmt.Errorf("inserting events: %w", err)
	}
	return nil
}

// InsertSpans keeps spans (idempotent by trace and span ID).
func (l *Log) InsertSpans(ctx context.Context, ss []span.Span) error {
	if len(ss) == 0 {
		return nil
	}
	if err := l.be.insert(ctx, l.b.insertSpans(), rowsOut[span.Span]{spans, ss}); err != nil {
		return fmt.Errorf("inserting spans: %w", err)
	}
	return nil
}

// Events returns the events matching q, in q.Order.
func (l *Log) Events(ctx context.Context, q Query) ([]event.Event, error) {
	out, err := queryRows(ctx, l, events, l.b.events(q))
	if err != nil {
		return nil, fmt.Errorf("querying events: %w", err)
	}
	return out, nil
}

// SyscallLog returns a process's read and write events and its flight-recorder syscall
// events, with their payloads, in order, for replay. node "" matches any node; from/to as in Query.
func (l *Log) SyscallLog(ctx context.Context, node string, pid uint32, from, to int64) ([]event.Event, error) {
	return l.Events(ctx, syscallQuery(node, pid, from, to))
}

// Count counts the events matching q; q.Limit is ignored.
func (l *Log) Count(ctx context.Context, q Query) (uint64, error) {
	out, err := queryRows(ctx, l, counts, l.b.count(q))
	if err != nil {
		return 0, fmt.Errorf("counting events: %w", err)
	}
	if len(out) != 1 {
		return 0, fmt.Errorf("counting events: %d rows, want 1", len(out))
	}
	return out[0], nil
}

// EventTotals adds up the events matching q, per type (in type order, only the types
// present); q.Limit and q.Order are ignored.
func (l *Log) EventTotals(ctx context.Context, q Query) ([]TypeTotal, error) {
	out, err := queryRows(ctx, l, typeTotals, l.b.totals(q))
	if err != nil {
		return nil, fmt.Errorf("adding up events: %w", err)
	}
	return out, nil
}

// EventTotalsByValue counts the events carrying each of values under the attribute key,
// in one query; values no event carries are absent from the result.
func (l *Log) EventTotalsByValue(ctx context.Context, key string, values []string) ([]ValueTotal, error) {
	if key == "" {
		return nil, fmt.Errorf("adding up events by value: no attribute key given")
	}
	if len(values) == 0 {
		return nil, nil
	}
	out, err := queryRows(ctx, l, valueTotals, l.b.valueTotals(key, values))
	if err != nil {
		return nil, fmt.Errorf("adding up events by %s: %w", key, err)
	}
	return out, nil
}

// SpanGroups returns the groups of spans sharing a value of q.Key, longest first.
func (l *Log) SpanGroups(ctx context.Context, q SpanGroupQuery) ([]SpanGroup, error) {
	if q.Key == "" {
		return nil, fmt.Errorf("querying span groups: no attribute key given")
	}
	out, err := queryRows(ctx, l, spanGroups, l.b.spanGroups(q))
	if err != nil {
		return nil, fmt.Errorf("querying span groups by %s: %w", q.Key, err)
	}
	return out, nil
}

// Close ends the log's use of its engine.
func (l *Log) Close() error { return l.be.close() }

// tableDDL is the kernel event table's definition as the engine keeps it.
func (l *Log) tableDDL(ctx context.Context) (string, error) {
	return l.queryString(ctx, l.b.createTableQuery())
}

// ensureSchema creates what is missing and brings an existing table's settings in line
// with the options.
func (l *Log) ensureSchema(ctx context.Context) error {
	b, days := l.b, l.opts.RetentionDays
	for _, sql := range []string{b.createDatabase(), b.createTable(days), b.createSpansTable(days)} {
		if err := l.exec(ctx, sql); err != nil {
			return err
		}
	}
	full, err := l.queryString(ctx, b.engineFull())
	if err != nil {
		return fmt.Errorf("reading table definition: %w", err)
	}
	if alter := b.alterTTL(full, days); alter != "" {
		if err := l.exec(ctx, alter); err != nil {
			return fmt.Errorf("changing retention: %w", err)
		}
	}
	if alter := b.alterWidePart(full); alter != "" {
		if err := l.exec(ctx, alter); err != nil {
			return fmt.Errorf("setting the part format: %w", err)
		}
	}
	ddl, err := l.queryString(ctx, b.createTableQuery())
	if err != nil {
		return fmt.Errorf("reading table definition: %w", err)
	}
	if alter := b.alterAddColumns(ddl); alter != "" {
		if err := l.exec(ctx, alter); err != nil {
			return fmt.Errorf("adding the columns of this build to %s: %w", b.table, err)
		}
	}
	return nil
}
