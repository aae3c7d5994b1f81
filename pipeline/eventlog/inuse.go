package eventlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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

// heldElsewhere names the process whose engine holds dir, or returns nil when none does.
func heldElsewhere(dir string) error {
	held, err := EmbeddedInUse(dir)
	if err != nil || !held {
		return nil // opening will say what is wrong
	}
	return fmt.Errorf("embedded event log %s is in use by %s: stop it first, or read through it (kprobe-tui --data and kprobe-agent api --data do)", dir, holder(dir))
}

// holder is the process named by the engine's status file ("PID: 1234"), with its
// command line when /proc shows it.
func holder(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return "another process"
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "PID:")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			break
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(cmdline) == 0 {
			return fmt.Sprintf("pid %d", pid)
		}
		cmd := strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
		if len(cmd) > 120 {
			cmd = cmd[:120] + "..."
		}
		return fmt.Sprintf("pid %d (%s)", pid, cmd)
	}
	return "another process"
}
