package wire

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode() & (os.ModePerm | os.ModeSticky)
}

// TestPrivateDataRefusesAForeignDirectory: a --data typo naming a shared directory
// (world-writable and sticky, holding another program's files) is refused, and nothing in
// it changes; a kprobe store in a looser directory is made private, store entries and
// all, while files that are not the store's are left as they were.
func TestPrivateDataRefusesAForeignDirectory(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	root := t.TempDir()

	shared := filepath.Join(root, "shared")
	if err := os.MkdirAll(filepath.Join(shared, "otherapp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(shared, "otherapp", "config")
	if err := os.WriteFile(config, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := PrivateData(shared)
	if err == nil || !strings.Contains(err.Error(), "holds no kprobe store") || !strings.Contains(err.Error(), "otherapp") {
		t.Errorf("PrivateData(a shared directory) = %v, want a refusal naming what it holds", err)
	}
	syscall.Umask(0)
	for path, want := range map[string]os.FileMode{shared: 0o777 | os.ModeSticky, filepath.Join(shared, "otherapp"): 0o755, config: 0o644} {
		if got := mode(t, path); got != want {
			t.Errorf("%s: mode %v after the refusal, want %v unchanged", path, got, want)
		}
	}

	store := filepath.Join(root, "store")
	if err := os.MkdirAll(filepath.Join(store, "events", "store"), 0o755); err != nil {
		t.Fatal(err)
	}
	ledger := filepath.Join(store, "ledger.log")
	if err := os.WriteFile(ledger, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(store, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := PrivateData(store); err != nil {
		t.Fatalf("PrivateData(a kprobe store): %v", err)
	}
	syscall.Umask(0)
	for path, want := range map[string]os.FileMode{store: 0o700, filepath.Join(store, "events"): 0o700,
		filepath.Join(store, "events", "store"): 0o700, ledger: 0o644} {
		if got := mode(t, path); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
	}

	fresh := filepath.Join(root, "new", "data")
	if err := PrivateData(fresh); err != nil {
		t.Fatalf("PrivateData(a new directory): %v", err)
	}
	if got := mode(t, fresh); got != 0o700 {
		t.Errorf("a new --data has mode %v, want 0700", got)
	}
}
