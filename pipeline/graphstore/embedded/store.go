package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/pipeline/causal"
	"github.com/kprobe/kprobe/pipeline/graphstore"
)

// Dir is where the embedded graph lives under a kprobe data directory (the --data of
// `kprobe-agent standalone` and of `kprobe-tui`), beside the event log.
func Dir(data string) string { return filepath.Join(data, "graph") }

const logName = "graph.log"

// Options configure a Store.
type Options struct {
	// ReadOnly opens a snapshot of the graph as it is on disk, without the directory's
	// lock: kprobe-tui can read while an agent writes. Write then fails.
	ReadOnly bool
	// SyncInterval is how often written records are flushed to disk (default 1 s). Every
	// Write reaches the operating system before it returns, so a killed process loses
	// nothing; a machine that loses power loses at most this much, which the engine can
	// draw again from the event log. Negative: flush on every Write.
	SyncInterval time.Duration
	Logger       *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.SyncInterval == 0 {
		o.SyncInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Store is one handle on a directory's graph. Handles opened in one process on the same
// directory share the graph (a standalone agent and its API); the last Close closes it.
type Store struct {
	sh        *shared
	readOnly  bool
	closed    atomic.Bool
	closeOnce sync.Once
}

var (
	_ causal.Writer = (*Store)(nil)
	_ causal.Reader = (*Store)(nil)
)

// shared is a directory's graph: the in-memory adjacency and the log behind it.
type shared struct {
	dir  string
	log  *slog.Logger
	refs int // guarded by registry.mu

	mu     sync.RWMutex
	g      *graph
	f      *os.File // the log, opened for append; nil in a read-only snapshot
	size   int64    // end of the last whole record
	broken error    // set when the log could not be restored after a failed write

	lock     *os.File // holds the directory's flock
	sync     time.Duration
	dirty    atomic.Bool
	stop     chan struct{}
	syncDone chan struct{}
}

var registry = struct {
	mu   sync.Mutex
	dirs map[string]*shared
}{dirs: map[string]*shared{}}

var errClosed = errors.New("embedded graph store is closed")

// Open opens the graph in dir, creating it when missing, and replays its log into memory.
// A writer takes the directory's lock: a second process gets a one-line error naming it.
// Unreadable bytes at the end of the log (a crash mid-write, or damage) are moved to a
// file beside it, never deleted, and the graph before them opens intact.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if dir == "" {
		return nil, errors.New("embedded graph store: no data directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded graph store: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if sh, ok := registry.dirs[abs]; ok {
		sh.refs++
		return &Store{sh: sh, readOnly: opts.ReadOnly}, nil
	}
	sh := &shared{dir: abs, log: opts.Logger.With("component", "graphstore", "store", "embedded", "dir", abs), refs: 1}
	if opts.ReadOnly {
		if err := sh.loadSnapshot(); err != nil {
			return nil, err
		}
		return &Store{sh: sh, readOnly: true}, nil
	}
	if err := sh.open(); err != nil {
		return nil, err
	}
	sh.sync = opts.SyncInterval
	if sh.sync > 0 {
		sh.stop, sh.syncDone = make(chan struct{}), make(chan struct{})
		go sh.syncLoop()
	}
	registry.dirs[abs] = sh
	return &Store{sh: sh}, nil
}

// loadSnapshot replays the log without taking the lock or changing anything.
func (sh *shared) loadSnapshot() error {
	f, err := os.Open(filepath.Join(sh.dir, logName))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("embedded graph store: no graph in %s (nothing was recorded there yet, or --data is wrong)", sh.dir)
	}
	if err != nil {
		return fmt.Errorf("embedded graph store: %w", err)
	}
	defer f.Close()
	sh.g = newGraph(sizeHint(f))
	good, damage := replay(f, sh.g)
	if errors.Is(damage, errNotALog) {
		return fmt.Errorf("embedded graph store: %s is %w (bad header): move it aside", f.Name(), damage)
	}
	if damage != nil {
		sh.log.Warn("graph log: stopped reading at damage (a writer may be mid-write)", "offset", good, "error", damage)
	}
	return nil
}

// open takes the lock, replays the log, sets damage aside and compacts when the log
// holds mostly superseded writes.
func (sh *shared) open() error {
	if err := os.MkdirAll(sh.dir, 0o750); err != nil {
		return fmt.Errorf("embedded graph store: creating %s: %w", sh.dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(sh.dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return fmt.Errorf("embedded graph store: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("embedded graph store in %s is used by another process: stop it, or open the store read-only", sh.dir)
		}
		return fmt.Errorf("embedded graph store: locking %s: %w", sh.dir, err)
	}
	sh.lock = lock
	if err := sh.openLog(); err != nil {
		unix.Flock(int(lock.Fd()), unix.LOCK_UN)
		lock.Close()
		return err
	}
	return nil
}

func (sh *shared) openLog() error {
	path := filepath.Join(sh.dir, logName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return fmt.Errorf("embedded graph store: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("embedded graph store: %w", err)
	}
	if fi.Size() == 0 {
		if _, err := f.Write([]byte(magic)); err != nil {
			f.Close()
			return fmt.Errorf("embedded graph store: writing %s: %w", path, err)
		}
	}
	sh.g = newGraph(sizeHint(f))
	good, damage := replay(f, sh.g)
	if errors.Is(damage, errNotALog) {
		f.Close()
		return fmt.Errorf("embedded graph store: %s is %w (bad header): move it aside", path, damage)
	}
	if damage != nil {
		if err := setAside(f, good, fi.Size()); err != nil {
			f.Close()
			return fmt.Errorf("embedded graph store: %s is damaged at byte %d (%v) and setting the damage aside failed: %w", path, good, damage, err)
		}
		sh.log.Warn("graph log damaged: kept the graph before the damage, moved the rest aside",
			"offset", good, "bytes", fi.Size()-good, "error", damage, "moved_to", damagedName(path, good))
	}
	sh.f, sh.size = f, good
	if _, err := f.Seek(good, 0); err != nil {
		f.Close()
		return fmt.Errorf("embedded graph store: %w", err)
	}
	if sh.g.applied > 2*sh.g.live()+10_000 {
		if err := sh.compact(); err != nil {
			// The log is still whole; compaction only saves space and replay time.
			sh.log.Warn("graph log: compaction failed", "error", err)
		}
	}
	return nil
}

// sizeHint guesses how many nodes and edges a log holds (about 64 bytes each), so the
// maps are sized once instead of growing through a replay.
func sizeHint(f *os.File) int {
	fi, err := f.Stat()
	if err != nil {
		return 0
	}
	return int(min(fi.Size()/64, 1<<26))
}

func damagedName(path string, off int64) string { return fmt.Sprintf("%s.damaged-%d", path, off) }

// setAside copies f's bytes from off to end into a file beside it and cuts f at off.
func setAside(f *os.File, off, end int64) error {
	buf := make([]byte, end-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return err
	}
	if err := writeFileSync(damagedName(f.Name(), off), buf); err != nil {
		return err
	}
	if err := f.Truncate(off); err != nil {
		return err
	}
	return f.Sync()
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// compact rewrites the log as the graph's current state, dropping superseded writes.
func (sh *shared) compact() error {
	path := filepath.Join(sh.dir, logName)
	tmp := path + ".compact"
	buf := []byte(magic)
	for _, part := range sh.g.snapshot(50_000) {
		buf = appendRecord(buf, part)
	}
	if err := writeFileSync(tmp, buf); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(sh.dir); err == nil {
		d.Sync()
		d.Close()
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Seek(0, 2); err != nil {
		f.Close()
		return err
	}
	sh.f.Close()
	sh.f, sh.size = f, int64(len(buf))
	sh.log.Info("graph log compacted", "writes", sh.g.applied, "live", sh.g.live(), "bytes", len(buf))
	sh.g.applied = sh.g.live()
	return nil
}

func (sh *shared) syncLoop() {
	defer close(sh.syncDone)
	t := time.NewTicker(sh.sync)
	defer t.Stop()
	for {
		select {
		case <-sh.stop:
			return
		case <-t.C:
			if sh.dirty.Swap(false) {
				if err := sh.f.Sync(); err != nil {
					sh.log.Error("graph log: flushing to disk failed", "error", err)
				}
			}
		}
	}
}

// Write implements causal.Writer: the graph is in the log (one record, applied whole or
// not at all on replay) and in memory when it returns.
func (s *Store) Write(ctx context.Context, g causal.Graph) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	if s.readOnly || s.sh.f == nil {
		return errors.New("embedded graph store: opened read-only")
	}
	g, err := graphstore.Normalize(g)
	if err != nil {
		return fmt.Errorf("writing graph: %w", err)
	}
	if len(g.Nodes) == 0 && len(g.Edges) == 0 {
		return nil
	}
	rec := appendRecord(nil, g)
	sh := s.sh
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.broken != nil {
		return sh.broken
	}
	if _, err := sh.f.Write(rec); err != nil {
		// Cut the partial record off so the log stays whole; if even that fails, refuse
		// writes rather than append after garbage.
		if terr := sh.f.Truncate(sh.size); terr != nil {
			sh.broken = fmt.Errorf("embedded graph store: %s is damaged after a failed write (%v); reopen the store", sh.dir, terr)
		} else {
			sh.f.Seek(sh.size, 0)
		}
		return fmt.Errorf("writing graph: appending to the log in %s: %w", sh.dir, err)
	}
	if sh.sync < 0 {
		if err := sh.f.Sync(); err != nil {
			return fmt.Errorf("writing graph: flushing the log in %s: %w", sh.dir, err)
		}
	} else {
		sh.dirty.Store(true)
	}
	sh.size += int64(len(rec))
	// The graph takes the write from the record itself, exactly as a replay will.
	return walkPayload(rec[headerSize:], sh.g)
}

func (s *Store) usable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return errClosed
	}
	return nil
}

// Causes implements causal.Reader.
func (s *Store) Causes(ctx context.Context, rootID string, limit int) ([]causal.Path, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	s.sh.mu.RLock()
	defer s.sh.mu.RUnlock()
	root, ok := s.sh.g.ids[rootID]
	if !ok {
		return nil, fmt.Errorf("causes of %q: %w", rootID, causal.ErrNotFound)
	}
	return s.sh.g.causes(root, limit), nil
}

// Subgraph implements causal.Reader.
func (s *Store) Subgraph(ctx context.Context, rootID string, maxDepth int) (causal.Graph, error) {
	if err := s.usable(ctx); err != nil {
		return causal.Graph{}, err
	}
	if maxDepth < 0 {
		return causal.Graph{}, fmt.Errorf("subgraph of %q: negative depth %d", rootID, maxDepth)
	}
	s.sh.mu.RLock()
	defer s.sh.mu.RUnlock()
	root, ok := s.sh.g.ids[rootID]
	if !ok {
		return causal.Graph{}, fmt.Errorf("subgraph of %q: %w", rootID, causal.ErrNotFound)
	}
	return s.sh.g.subgraph(root, maxDepth), nil
}

// Close releases this handle; the last handle on a directory flushes the log to disk and
// releases the directory's lock.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		registry.mu.Lock()
		defer registry.mu.Unlock()
		sh := s.sh
		if sh.refs--; sh.refs > 0 {
			return
		}
		if sh.f == nil { // a read-only snapshot
			return
		}
		delete(registry.dirs, sh.dir)
		if sh.stop != nil {
			close(sh.stop)
			<-sh.syncDone
		}
		sh.mu.Lock()
		defer sh.mu.Unlock()
		err = sh.f.Sync()
		if cerr := sh.f.Close(); err == nil {
			err = cerr
		}
		unix.Flock(int(sh.lock.Fd()), unix.LOCK_UN)
		sh.lock.Close()
		if err != nil {
			err = fmt.Errorf("closing the embedded graph store in %s: %w", sh.dir, err)
		}
	})
	return err
}
