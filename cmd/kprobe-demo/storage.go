package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// storage is the ledger file, its lock (shared with the reconciler) and, for the
// slow-storage incident, a journal beside it.
type storage struct {
	ledger  *os.File
	lock    *os.File
	journal *os.File // opened on first use
	path    string
	block   []byte
}

const (
	journalBlock = 256 << 10
	journalSize  = 16 << 20 // the journal is rewritten in place: bounded disk use
)

func openStorage(path string) (*storage, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening ledger: %w", err)
	}
	l, err := os.OpenFile(lockPath(path), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("opening the ledger lock: %w", err)
	}
	return &storage{ledger: f, lock: l, path: path}, nil
}

func lockPath(ledger string) string { return ledger + ".lock" }

// withLock runs f holding the ledger lock (flock), which the reconciler takes too.
func (s *storage) withLock(f func() error) error {
	if err := unix.Flock(int(s.lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("locking the ledger: %w", err)
	}
	err := f()
	if uerr := unix.Flock(int(s.lock.Fd()), unix.LOCK_UN); uerr != nil && err == nil {
		err = fmt.Errorf("unlocking the ledger: %w", uerr)
	}
	return err
}

// append writes lines to the ledger and makes them durable.
func (s *storage) append(lines string) (int, error) {
	n, err := s.ledger.WriteString(lines)
	if err != nil {
		return n, fmt.Errorf("writing ledger: %w", err)
	}
	if err := s.ledger.Sync(); err != nil {
		return n, fmt.Errorf("syncing ledger: %w", err)
	}
	return n, nil
}

// writeJournal writes and syncs 256 KiB blocks until d has passed.
func (s *storage) writeJournal(d time.Duration) (blocks int, err error) {
	if s.journal == nil {
		if s.journal, err = os.OpenFile(s.path+".journal", os.O_RDWR|os.O_CREATE, 0o644); err != nil {
			return 0, fmt.Errorf("opening ledger journal: %w", err)
		}
		s.block = make([]byte, journalBlock)
		for i := range s.block {
			s.block[i] = byte(i)
		}
	}
	start := time.Now()
	for blocks == 0 || time.Since(start) < d {
		binary.LittleEndian.PutUint64(s.block, uint64(blocks)) // each block its number
		off := int64(blocks*journalBlock) % journalSize
		if _, err := s.journal.WriteAt(s.block, off); err != nil {
			return blocks, fmt.Errorf("writing ledger journal: %w", err)
		}
		if err := s.journal.Sync(); err != nil {
			return blocks, fmt.Errorf("syncing ledger journal: %w", err)
		}
		blocks++
	}
	return blocks, nil
}

// journalID is the journal's device and inode (zeros before it is opened).
func (s *storage) journalID() (dev, ino uint64) {
	if s.journal == nil {
		return 0, 0
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(s.journal.Fd()), &st); err != nil {
		return 0, 0
	}
	return st.Dev, st.Ino
}

func (s *storage) close() {
	s.ledger.Close()
	s.lock.Close()
	os.Remove(lockPath(s.path))
	if s.journal != nil {
		s.journal.Close()
		os.Remove(s.path + ".journal")
	}
}
