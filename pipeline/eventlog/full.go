package eventlog

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// MinFreeMiB is the free space the embedded event log needs to take a batch: an insert
// stages the batch in a spool file, then the engine reserves the batch's uncompressed size
// (up to ~8 MiB for the engine's 50k-event batches) for the new part, and background
// merges reserve the size of the parts they merge. Below this the log fills at once.
const MinFreeMiB = 64

// FullError says the event log's disk is full: writes fail until space is freed.
type FullError struct {
	Dir string // the event log's directory
	Err error  // what the filesystem or the engine said
}

func (e *FullError) Error() string {
	return fmt.Sprintf("the event log directory %s is full (%v): free space there, or give --data a volume with at least %d MiB free",
		e.Dir, e.Err, MinFreeMiB)
}

func (e *FullError) Unwrap() error { return e.Err }

// DiskFull marks the error for writers that retry (the engine): only freeing space ends it.
func (e *FullError) DiskFull() bool { return true }

// diskFull wraps err in a FullError when it says the disk under dir is full: ENOSPC from
// the spool file, or the engine's NOT_ENOUGH_SPACE (it could not reserve room for a part)
// or its own ENOSPC text.
func diskFull(dir string, err error) error {
	if err == nil {
		return nil
	}
	if isFull(err) {
		return &FullError{Dir: dir, Err: shortEngineError(err)}
	}
	return err
}

func isFull(err error) bool {
	msg := err.Error()
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(msg, "NOT_ENOUGH_SPACE") || strings.Contains(msg, "No space left on device")
}

// shortEngineError keeps the first line of an engine error: its stack trace says nothing
// to an operator.
func shortEngineError(err error) error {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i > 0 {
		return errors.New(msg[:i])
	}
	return err
}
