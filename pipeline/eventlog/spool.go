package eventlog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// The embedded engine reads each insert batch from a spool file (embedded.insert). A
// file's name says how far it got, so that what a crash (kill -9, an OOM kill, a power
// cut) leaves behind can be judged at the next start:
//
//	insert-KIND-N.part    being written: never inserted; its rows were still held by the
//	                      writer (which retries them, or re-reads them from Kafka's last
//	                      commit), so the file is removed;
//	insert-KIND-N.native  complete: handed to the engine, perhaps inserted, perhaps not;
//	                      it is inserted (again) and removed. Inserting rows again changes
//	                      no result: the tables are ReplacingMergeTree on the event's ID (a
//	                      span's trace and span IDs) and every read uses FINAL.
//	insert-N              from a version without this protocol: inserted like .native
//	                      when the engine can read it whole, else removed as incomplete.
//
// A file is removed once its insert succeeded, or failed (the writer holds the rows and
// retries them in a new file).

// spoolTarget is where a kind of spool file is inserted.
type spoolTarget struct {
	into      string // INSERT INTO t (columns)
	structure string // of its Native stream
}

// ctxWriter stops writing once ctx ends: encoding a large batch into a spool file on a
// slow or full disk must not hold a stop past its drain timeout.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// spoolInsert stages b in a spool file and has the engine insert it into into.
func (e *embedded) spoolInsert(ctx context.Context, into string, b outgoing) error {
	kind := "rows"
	for k, t := range e.targets {
		if t.into == into {
			kind = k
		}
	}
	f, err := os.CreateTemp(e.spool, "insert-"+kind+"-*.part")
	if err != nil {
		return fmt.Errorf("creating spool file: %w", err)
	}
	part := f.Name()
	err = b.writeNative(ctxWriter{ctx, f})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	native := strings.TrimSuffix(part, ".part") + ".native"
	if err == nil {
		err = os.Rename(part, native)
	}
	if err != nil {
		os.Remove(part)
		return fmt.Errorf("writing spool file: %w", err)
	}
	defer os.Remove(native)
	return e.insertFile(native, spoolTarget{into, b.structure()})
}

func (e *embedded) insertFile(path string, t spoolTarget) error {
	sql := t.into + " SELECT * FROM file({path:String}, 'Native', '" + t.structure + "')"
	return e.conn.query([]byte(sql), "Native", []param{{"path", path}}, nil)
}

// recoverSpool handles what an earlier process left in the spool directory (see above).
func (e *embedded) recoverSpool(log *slog.Logger) error {
	names, err := filepath.Glob(filepath.Join(e.spool, "insert-*"))
	if err != nil {
		return err
	}
	for _, path := range names {
		base := filepath.Base(path)
		var targets []spoolTarget
		switch {
		case strings.HasSuffix(base, ".part"):
		case strings.HasSuffix(base, ".native"):
			kind, _, _ := strings.Cut(strings.TrimPrefix(base, "insert-"), "-")
			if t, ok := e.targets[kind]; ok {
				targets = append(targets, t)
			}
		default: // legacy: events or spans, whichever reads it
			targets = append(targets, e.targets["events"], e.targets["spans"])
		}
		inserted := false
		var lastErr error
		for _, t := range targets {
			if lastErr = e.insertFile(path, t); lastErr == nil {
				inserted = true
				break
			}
		}
		if lastErr != nil && isFull(lastErr) {
			// Nothing can be judged on a full disk: keep the file for the next start.
			return diskFull(e.dir, fmt.Errorf("recovering spool file %s: %w", base, lastErr))
		}
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("removing spool file %s left by an earlier run: %w", base, err)
		}
		switch {
		case inserted:
			log.Info("recovered a spool file left by an earlier run", "file", path)
		case len(targets) == 0:
			log.Info("removed an incomplete spool file left by an earlier run (never inserted)", "file", path)
		default:
			log.Warn("removed a spool file left by an earlier run that the engine cannot read (incomplete)", "file", path,
				"err", shortEngineError(lastErr))
		}
	}
	return nil
}
