package eventlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// sharedChDB is the process's one chDB instance (chDB allows one engine and one data path
// per process), shared by every Log opened on its directory.
var sharedChDB struct {
	mu   sync.Mutex
	conn *chdbConn
	dir  string
	refs int
}

// acquireChDB boots the engine on dir, or shares it when it already runs there; booted
// says which.
func acquireChDB(dir string) (_ *chdbConn, booted bool, _ error) {
	sharedChDB.mu.Lock()
	defer sharedChDB.mu.Unlock()
	if sharedChDB.conn != nil {
		if sharedChDB.dir != dir {
			return nil, false, fmt.Errorf("opening %s: %w: %s is open; close its event log first", dir, ErrEngineInUse, sharedChDB.dir)
		}
		sharedChDB.refs++
		return sharedChDB.conn, false, nil
	}
	// Another process's engine on dir is named before this one tries and fails.
	if err := heldElsewhere(dir); err != nil {
		return nil, false, err
	}
	lib, err := loadLibrary(LibraryPath())
	if err != nil {
		return nil, false, err
	}
	c, err := connectEngine(lib, dir)
	if err != nil {
		if err := heldElsewhere(dir); err != nil {
			return nil, false, err // it started in between
		}
		if uerr := unix.Access(dir, unix.R_OK|unix.W_OK|unix.X_OK); errors.Is(uerr, fs.ErrPermission) {
			return nil, false, fmt.Errorf("embedded event log %s: permission denied: run as the user who owns it", dir)
		}
		return nil, false, fmt.Errorf("embedded ClickHouse could not open %s (%v; the engine logs why on stderr): no other process holds it, so it may be damaged: if so, move it aside", dir, err)
	}
	sharedChDB.conn, sharedChDB.dir, sharedChDB.refs = c, dir, 1
	return c, true, nil
}

func releaseChDB() {
	sharedChDB.mu.Lock()
	defer sharedChDB.mu.Unlock()
	sharedChDB.refs--
	if sharedChDB.refs == 0 {
		sharedChDB.conn.close()
		sharedChDB.conn, sharedChDB.dir = nil, ""
	}
}

// embedded is the backend over the process's chDB instance.
type embedded struct {
	conn  *chdbConn
	dir   string // the event log's directory
	spool string // where insert batches are staged (spool.go)
	// targets are the tables spool files go to, by the kind their names carry.
	targets map[string]spoolTarget

	closed    atomic.Bool
	closeOnce sync.Once
}

// OpenEmbedded opens (creating when needed) the event log in dir with the embedded
// ClickHouse engine, loading libchdb.so on first use (see LibraryPath). chDB runs one
// engine per process: logs opened on the same dir share it, another dir is an error
// (ErrEngineInUse) until every log on the first is closed.
func OpenEmbedded(ctx context.Context, dir string, opts Options) (*Log, error) {
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
	conn, booted, err := acquireChDB(abs)
	if err != nil {
		return nil, err
	}
	e := &embedded{conn: conn, dir: abs, spool: filepath.Join(abs, "kprobe-spool")}
	if err := os.MkdirAll(e.spool, 0o750); err != nil {
		releaseChDB()
		return nil, fmt.Errorf("embedded event log: creating spool directory: %w", err)
	}
	l := &Log{be: e, b: newBuilder(opts.Database), opts: opts}
	e.targets = map[string]spoolTarget{
		"events": {l.b.insertEvents(), eventsOut{rowsOut[event.Event]{t: events}}.structure()},
		"spans":  {l.b.insertSpans(), rowsOut[span.Span]{t: spans}.structure()},
	}
	if err := l.ensureSchema(ctx); err != nil {
		releaseChDB()
		return nil, fmt.Errorf("embedded event log in %s: preparing schema: %w (if the directory is damaged, move it aside)", abs, err)
	}
	// Only the log that booted the engine may judge the spool: another log of this
	// process on the same directory may be inserting from it right now.
	if booted {
		err = e.recoverSpool(opts.Logger)
	}
	if err != nil {
		releaseChDB()
		return nil, fmt.Errorf("embedded event log in %s: %w", abs, err)
	}
	opts.Logger.Debug("embedded event log open", "dir", abs, "library", conn.lib.path, "retention_days", opts.RetentionDays)
	return l, nil
}

var errClosed = errors.New("event log is closed")

func (e *embedded) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.closed.Load() {
		return errClosed
	}
	return nil
}

func (e *embedded) exec(ctx context.Context, sql string) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	return e.conn.query([]byte(sql), "Native", nil, nil)
}

// query has the engine answer in Native (native.go). chDB takes the output format as an
// argument, so the SQL text is exactly what the server engine runs.
func (e *embedded) query(ctx context.Context, st stmt, f *frame, flush func()) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	return e.conn.query([]byte(st.sql), "Native", st.params, func(b []byte) error {
		return readNative(b, f, flush)
	})
}

// insert writes the blocks to a spool file in Native format and has the engine read it
// (INSERT ... SELECT FROM file()): no SQL literals to build and parse, and a columnar
// encoding the engine reads far faster than RowBinary (see BenchmarkEmbeddedInsert).
// Rows cannot follow "INSERT ... FORMAT Native" in the query text instead: chDB splits the
// text into statements first, and binary rows can look like a statement separator.
func (e *embedded) insert(ctx context.Context, into string, b outgoing) error {
	if err := e.check(ctx); err != nil {
		return err
	}
	return diskFull(e.dir, e.spoolInsert(ctx, into, b))
}

// close releases this log's share of the engine; the engine stops with the last one.
func (e *embedded) close() error {
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		releaseChDB()
	})
	return nil
}
