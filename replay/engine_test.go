package replay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServesAFileThatChanged(t *testing.T) {
	needSandbox(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "input.txt")
	if err := os.WriteFile(path, []byte("changed since\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var s script
	prod := []byte("as in production\n")
	s.open(path, 3)
	s.call(testPID, "read", 3, int64(len(prod)), prod, 3, 0, 131072)
	s.call(testPID, "write", 1, int64(len(prod)), prod, 1, 0, int64(len(prod)))
	s.call(testPID, "read", 3, 0, nil, 3, 0, 131072)
	s.call(testPID, "close", 3, 0, nil, 3)

	got := replayIt(t, s.evs, nil, StopAtDivergence, "cat", path)
	if got.stdout != string(prod) {
		t.Errorf("stdout %q, want production's %q (stderr %q, summary %+v)", got.stdout, prod, got.stderr, got.sum)
	}
	if got.sum.ExitCode != 0 || got.sum.Divergence != nil {
		t.Errorf("summary %+v, want exit 0 and no divergence", got.sum)
	}
	var served []string
	for _, r := range got.trace {
		if r.Kind == Served {
			served = append(served, r.Syscall)
		}
	}
	if strings.Join(served, " ") != "openat read read" {
		t.Errorf("served %v, want the open and both reads", served)
	}
}
