package eventlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// EmbeddedInUse reports whether a process has the embedded engine open on dir (as
// EmbeddedDir names it). The engine holds an exclusive flock on dir/status while it runs
// (a second opener fails with "Cannot lock file … Another server instance"); asking for the
// same lock without waiting tells, without starting an engine.
func EmbeddedInUse(dir string) (bool, error) {
	f, err := os.Open(filepath.Join(dir, "status"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // the engine removes it when it stops
	}
	if err != nil {
		return false, fmt.Errorf("embedded event log: %w", err)
	}
	defer f.Close()
	switch err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); {
	case errors.Is(err, unix.EWOULDBLOCK):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("embedded event log: %w", err)
	}
	// Let go at once: an engine starting now must find the file free.
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false, nil
}
