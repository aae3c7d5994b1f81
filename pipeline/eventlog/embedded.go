package eventlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// engine is the process's one chDB engine, shared by every Store opened on its directory.
var engine struct {
	mu   sync.Mutex
	conn *chdbConn
	dir  string
	refs int
}

// acquireEngine boots the engine on dir, or shares it when it already runs there.
func acquireEngine(dir string) (*chdbConn, error) {
	engine.mu.Lock()
	defer engine.mu.Unlock()
	if engine.conn != nil {
		if engine.dir != dir {
			return nil, fmt.Errorf("opening %s: %w: %s is open; close its store first", dir, ErrEngineInUse, engine.dir)
		}
		engine.refs++
		return engine.conn, nil
	}
	lib, err := loadLibrary(LibraryPath())
	if err != nil {
		return nil, err
	}
	c, err := connectEngine(lib, dir)
	if err != nil {
		return nil, fmt.Errorf("embedded ClickHouse could not open %s (%v; the engine logs why on stderr): the directory is corrupt or used by another process: stop that process, or move the directory aside", dir, err)
	}
	engine.conn, engine.dir, engine.refs = c, dir, 1
	return c, nil
}

func releaseEngine() {
	engine.mu.Lock()
	defer engine.mu.Unlock()
	engine.refs--
	if engine.refs == 0 {
		engine.conn.close()
		engine.conn, engine.dir = nil, ""
	}
}

// embedded is the Store over chDB.
type embedded struct {
	conn      *chdbConn
	b         builder
	spool     string // where insert batches are staged
	insertSQL string
	opts      Options

	closed    atomic.Bool
	closeOnce sync.Once
}

// OpenEmbedded opens (creating when needed) the event log in dir with the embedded
// ClickHouse engine, loading libchdb.so on first use (see LibraryPath). chDB runs one
// engine per process: stores opened on the same dir share it, another dir is an error
// (ErrEngineInUse) until every store on the first is closed.
func OpenEmbedded(ctx context.Context, dir string, opts Options) (Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, errors.New("embedded event log: no data directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded event log: %w", err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("embedded event log: creating data directory: %w", err)
	}
	conn, err := acquireEngine(abs)
	if err != nil {
		return nil, err
	}
	s := &embedded{conn: conn, b: newBuilder(opts.Database), opts: opts}
	s.spool = filepath.Join(abs, "kprobe-spool")
	if err := os.MkdirAll(s.spool, 0o750); err != nil {
		releaseEngine()
		return nil, fmt.Errorf("embedded event log: creating spool directory: %w", err)
	}
	s.insertSQL = s.b.insertNative()
	if err := ensureSchema(ctx, s, s.b, opts.RetentionDays); err != nil {
		releaseEngine()
		return nil, fmt.Errorf("embedded event log in %s: preparing schema: %w (if the directory is damaged, move it aside)", abs, err)
	}
	opts.Logger.Debug("embedded event log open", "dir", abs, "library", conn.lib.path, "retention_days", opts.RetentionDays)
	return s, nil
}

var errClosed = errors.New("event log is closed")

func (s *embedded) run(ctx context.Context, st stmt, read func([]byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return errClosed
	}
	// chDB reads "RowBinary" output from the format argument, so the SQL text is exactly
	// what the server engine runs.
	return s.conn.query([]byte(st.sql), "RowBinary", st.params, read)
}

func (s *embedded) exec(ctx context.Context, sql string) error {
	return s.run(ctx, stmt{sql: sql}, nil)
}

func (s *embedded) queryString(ctx context.Context, st stmt) (string, error) {
	var out string
	err := s.run(ctx, st, func(b []byte) error {
		r := rowReader{b: b}
		out = r.str()
		return r.err
	})
	return out, err
}

// Insert writes the batch to a spool file in Native format (native.go) and has the engine
// read it (INSERT ... SELECT FROM file()): no SQL literals to build and parse, and a
// columnar encoding the engine reads far faster than RowBinary (see BenchmarkEmbeddedInsert).
// Rows cannot follow "INSERT ... FORMAT Native" in the query text instead: chDB splits the
// text into statements first, and binary rows can look like a statement separator.
func (s *embedded) Insert(ctx context.Context, events []event.Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return errClosed
	}
	return s.loadFile(s.insertSQL, "events", func(w io.Writer) error { return writeNative(w, events) })
}

// InsertSpans stages spans in a RowBinary file (spans are few; events are the volume).
func (s *embedded) InsertSpans(ctx context.Context, spans []span.Span) error {
	if len(spans) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return errClosed
	}
	var buf []byte
	for i := range spans {
		buf = appendSpan(buf, &spans[i])
	}
	return s.loadFile(s.b.insertSpansFromFile(), "spans", func(w io.Writer) error {
		_, err := w.Write(buf)
		return err
	})
}

// loadFile has write fill a spool file and runs insertSQL, which reads it.
func (s *embedded) loadFile(insertSQL, what string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(s.spool, "insert-*")
	if err != nil {
		return fmt.Errorf("inserting %s: %w", what, err)
	}
	defer os.Remove(f.Name())
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("inserting %s: writing spool file: %w", what, err)
	}
	st := stmt{sql: insertSQL, params: []param{{"path", f.Name()}}}
	if err := s.conn.query([]byte(st.sql), "RowBinary", st.params, nil); err != nil {
		return fmt.Errorf("inserting %s: %w", what, err)
	}
	return nil
}

// Settlements implements Store.
func (s *embedded) Settlements(ctx context.Context, q SettlementQuery) ([]Settlement, error) {
	var out []Settlement
	err := s.run(ctx, s.b.settlements(q), func(b []byte) (err error) {
		out, err = decodeSettlements(b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("querying settlements: %w", err)
	}
	return out, nil
}

func (s *embedded) events(ctx context.Context, st stmt) ([]event.Event, error) {
	var out []event.Event
	err := s.run(ctx, st, func(b []byte) (err error) {
		out, err = decodeEvents(b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("querying events: %w", err)
	}
	return out, nil
}

func (s *embedded) Events(ctx context.Context, q Query) ([]event.Event, error) {
	return s.events(ctx, s.b.events(q))
}

func (s *embedded) SyscallLog(ctx context.Context, node string, pid uint32, from, to int64) ([]event.Event, error) {
	return s.events(ctx, s.b.events(syscallQuery(node, pid, from, to)))
}

func (s *embedded) Slowest(ctx context.Context, from, to int64, n int) ([]event.Event, error) {
	if n <= 0 {
		return nil, nil
	}
	return s.events(ctx, s.b.slowest(from, to, n))
}

func (s *embedded) Count(ctx context.Context, q Query) (uint64, error) {
	var n uint64
	err := s.run(ctx, s.b.count(q), func(b []byte) error {
		if len(b) != 8 {
			return fmt.Errorf("count: got %d bytes, want 8", len(b))
		}
		n = binary.LittleEndian.Uint64(b)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("counting events: %w", err)
	}
	return n, nil
}

// Close releases this store's share of the engine; the engine stops with the last one.
func (s *embedded) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		releaseEngine()
	})
	return nil
}

func (s *embedded) tableDDL(ctx context.Context) (string, error) {
	return s.queryString(ctx, s.b.createTableQuery())
}
