package wire

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// storeEntries are what kprobe keeps under --data: its event log, its graph, its API
// socket. Only these are tightened; a directory holding none of them but other files is
// not kprobe's, and is refused rather than taken over.
var storeEntries = []string{"events", "graph", "api.sock"}

// PrivateData makes --data a directory only its owner can enter, creating it 0700 or
// tightening a looser one, and makes everything this process creates from now on
// owner-only (umask 077): the stores hold the programs' own bytes (payloads, the flight
// recorder's reads), which no other local user may read. The umask covers the files
// the embedded engine creates on its own threads, which no mode argument reaches; a
// recorded command gets the umask it was started with back (launch restores it).
// An existing directory that is not empty and holds no kprobe store (a typo such as
// --data /var/lib, a shared directory) is refused: nothing in it is changed.
func PrivateData(dir string) error {
	syscall.Umask(0o077)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating --data %s: %w", dir, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--data %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("--data %s is not a directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("--data %s: %w", dir, err)
	}
	var ours []string
	for _, name := range storeEntries {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			ours = append(ours, name)
		}
	}
	if len(entries) > 0 && len(ours) == 0 {
		return fmt.Errorf("--data %s is not empty and holds no kprobe store (it has %s): give kprobe a directory of its own, new or empty",
			dir, entries[0].Name())
	}
	if err := makePrivate(dir, st.Mode()); err != nil {
		return err
	}
	// What an earlier version left group- or world-readable is tightened too: the top
	// directory alone already shuts others out, the rest is for a copied-out store.
	for _, name := range ours {
		if err := tighten(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// tighten removes group and other permissions under root (symlinks are not followed).
func tighten(root string) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // gone since listed, or a socket's peer: nothing to tighten
		}
		info, err := d.Info()
		if err != nil || info.Mode()&fs.ModeSymlink != 0 {
			return nil
		}
		return makePrivate(path, info.Mode())
	})
}

// makePrivate removes group and other permissions from path, whose mode is m.
func makePrivate(path string, m fs.FileMode) error {
	if m.Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, m.Perm()&^0o077); err != nil {
		return fmt.Errorf("--data %s is readable by other users (mode %04o) and cannot be made private: %w", path, m.Perm(), err)
	}
	return nil
}
