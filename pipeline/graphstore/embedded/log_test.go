package embedded

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/pipeline/causal"
)

// subject is a small graph rooted at settlement/<i>.
func subject(i int) causal.Graph {
	root := fmt.Sprintf("settlement/%d", i)
	return causal.Graph{
		Nodes: []causal.Node{
			{ID: root, Label: causal.LabelSettlement, Props: map[string]string{"settlement.id": strconv.Itoa(i)}},
			{ID: root + "/cause", Label: causal.LabelCause}, // in Subgraph's order
			{ID: root + "/span", Label: causal.LabelSpan},
		},
		Edges: []causal.Edge{
			{From: root, To: root + "/span", Type: "HAS_SPAN"},
			{From: root + "/span", To: root + "/cause", Type: "CAUSED_BY", ExplainedNs: int64(i), Rule: "storage", Confidence: 1, Join: "tid", Evidence: []uint64{uint64(i)}},
		},
	}
}

func open(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func write(t *testing.T, s *Store, gs ...causal.Graph) {
	t.Helper()
	for _, g := range gs {
		if err := s.Write(context.Background(), g); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
}

// has reports whether subject i is whole in s.
func has(t *testing.T, s *Store, i int) bool {
	t.Helper()
	g, err := s.Subgraph(context.Background(), fmt.Sprintf("settlement/%d", i), 5)
	if errors.Is(err, causal.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatalf("Subgraph: %v", err)
	}
	if diff := cmp.Diff(subject(i), g, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("subject %d (-want +got):\n%s", i, diff)
	}
	return true
}

// recordEnds returns where each record of the log ends.
func recordEnds(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &counter{off: headerSize}
	if _, err := replay(f, c); err != nil {
		t.Fatalf("replay: %v", err)
	}
	return c.ends
}

func TestDamageIsSetAsideAndTheRestOpens(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte, ends []int64) []byte
		keep   int // subjects intact after reopening
	}{
		{"cut mid-record (crash during a write)", func(b []byte, ends []int64) []byte { return b[:ends[2]-3] }, 2},
		{"cut mid-header", func(b []byte, ends []int64) []byte { return b[:ends[1]+5] }, 2},
		{"a flipped byte in the second record", func(b []byte, ends []int64) []byte { b[ends[0]+12] ^= 0xff; return b }, 1},
		{"garbage appended", func(b []byte, ends []int64) []byte { return append(b, "not a record at all"...) }, 3},
		{"an impossible length", func(b []byte, ends []int64) []byte {
			return append(b, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0)
		}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{})
			write(t, s, subject(0), subject(1), subject(2))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, logName)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ends := recordEnds(t, path)
			damaged := tc.damage(bytes.Clone(b), ends)
			if err := os.WriteFile(path, damaged, 0o640); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			s = open(t, dir, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			for i := range 3 {
				if got, want := has(t, s, i), i < tc.keep; got != want {
					t.Errorf("subject %d present %v, want %v", i, got, want)
				}
			}
			// The bytes after the last good record are kept beside the log, not deleted.
			good := int64(headerSize)
			if tc.keep > 0 {
				good = ends[tc.keep-1]
			}
			aside, err := os.ReadFile(damagedName(path, good))
			if err != nil {
				t.Fatalf("the damaged bytes were not set aside: %v", err)
			}
			if !bytes.Equal(aside, damaged[good:]) {
				t.Errorf("set aside %d bytes, want the %d after offset %d", len(aside), len(damaged)-int(good), good)
			}
			if !strings.Contains(logs.String(), "graph log damaged") {
				t.Errorf("no warning logged: %q", logs.String())
			}
			// The store goes on: a new write lands after the good records and survives.
			write(t, s, subject(7))
			s.Close()
			s = open(t, dir, Options{})
			if !has(t, s, 7) || (tc.keep > 0 && !has(t, s, 0)) {
				t.Errorf("after writing on the repaired log, subjects are missing")
			}
		})
	}
}

func TestNotALogIsLeftAlone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, logName)
	content := []byte("somebody else's file\n")
	if err := os.WriteFile(path, content, 0o640); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		_, err := Open(context.Background(), dir, Options{ReadOnly: ro})
		if err == nil || !strings.Contains(err.Error(), "not a kprobe graph log") || !strings.Contains(err.Error(), "move it aside") {
			t.Errorf("read-only %v: err %v, want one naming the bad header and the fix", ro, err)
		}
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, content) {
		t.Errorf("the file was changed: %q", b)
	}
}

func TestLockedDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	write(t, s, subject(1))
	s.Close()
	// Another open file description holding the lock is what another process looks like.
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "used by another process") {
		t.Fatalf("Open of a locked directory: err %v", err)
	}
	// A reader needs no lock.
	ro := open(t, dir, Options{ReadOnly: true})
	if !has(t, ro, 1) {
		t.Errorf("read-only open misses subject 1")
	}
	if err := ro.Write(context.Background(), subject(2)); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Write on a read-only store: %v", err)
	}
	unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	s = open(t, dir, Options{})
	if !has(t, s, 1) {
		t.Errorf("after the lock is released the store opens with its graph")
	}
}

func TestReadOnlyOfAnEmptyDirectory(t *testing.T) {
	_, err := Open(context.Background(), t.TempDir(), Options{ReadOnly: true})
	if err == nil || !strings.Contains(err.Error(), "no graph in") {
		t.Errorf("err %v", err)
	}
}

func TestHandlesInOneProcessShareTheGraph(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, Options{})
	b := open(t, dir, Options{})
	r := open(t, dir, Options{ReadOnly: true})
	write(t, a, subject(1))
	if !has(t, b, 1) || !has(t, r, 1) {
		t.Fatalf("a write through one handle is not seen through the others")
	}
	a.Close()
	write(t, b, subject(2)) // still open: b holds the directory
	if err := a.Write(context.Background(), subject(3)); !errors.Is(err, errClosed) {
		t.Errorf("Write on a closed handle: %v", err)
	}
	b.Close()
	r.Close()
	c := open(t, dir, Options{})
	if !has(t, c, 1) || !has(t, c, 2) || has(t, c, 3) {
		t.Errorf("after the last handle closed, the reopened store has the wrong subjects")
	}
}

func TestCompactionKeepsTheGraph(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	for round := range 12 {
		for i := range 500 {
			g := subject(i)
			g.Edges[1].ExplainedNs = int64(round*1000 + i) // every round replaces the edges
			write(t, s, g)
		}
	}
	want, err := s.Subgraph(context.Background(), "settlement/42", 5)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, logName)
	before, _ := os.Stat(path)
	s = open(t, dir, Options{})
	after, _ := os.Stat(path)
	if after.Size()*4 > before.Size() {
		t.Errorf("log %d bytes after compaction, %d before: want a quarter or less", after.Size(), before.Size())
	}
	got, err := s.Subgraph(context.Background(), "settlement/42", 5)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after compaction (-want +got):\n%s", diff)
	}
	if got.Edges[1].ExplainedNs != 11042 {
		t.Errorf("the last round's edge did not win: %v", got.Edges[1])
	}
	// And a write after compaction appends to the new log.
	write(t, s, subject(9999))
	s.Close()
	s = open(t, dir, Options{})
	if !has(t, s, 9999) {
		t.Errorf("the write after compaction is missing")
	}
	if p, err := s.Causes(context.Background(), "settlement/499", 1); err != nil || len(p) != 1 || p[0].Edges[1].ExplainedNs != 11499 {
		t.Errorf("compacted subject 499: %v, %v", p, err)
	}
}

// TestKilledWriterLosesNothing kills a writing process with SIGKILL and checks that every
// write it had been told succeeded is in the graph, and that a reader opened while it
// wrote saw a consistent prefix.
func TestKilledWriterLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process (-short)")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := -1
	var reader *Store
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "written ")
		if !ok {
			continue
		}
		if acked, err = strconv.Atoi(n); err != nil {
			t.Fatal(err)
		}
		if acked == 100 && reader == nil {
			reader = open(t, dir, Options{ReadOnly: true})
		}
		if acked >= 300 {
			break
		}
	}
	if acked < 300 {
		t.Fatalf("the writer stopped after %d writes: %v", acked, sc.Err())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	go func() {
		for sc.Scan() { // drain, so the child never blocks on a full pipe
		}
	}()
	cmd.Wait()

	s := open(t, dir, Options{})
	for i := 0; i <= acked; i++ {
		if !has(t, s, i) {
			t.Fatalf("subject %d was acknowledged before the kill but is missing", i)
		}
	}
	// The reader saw every write acknowledged before it opened and only whole subjects.
	for i := 0; i <= 100; i++ {
		if !has(t, reader, i) {
			t.Fatalf("the reader misses subject %d, written before it opened", i)
		}
	}
	for i := 101; has(t, reader, i); i++ { // has fails the test on a partial subject
	}
}

const helperEnv = "KPROBE_GRAPH_HELPER_DIR"

// TestMain runs the child of TestKilledWriterLosesNothing when asked to: it writes
// subjects until killed, printing each acknowledged one.
func TestMain(m *testing.M) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		os.Exit(m.Run())
	}
	s, err := Open(context.Background(), dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for i := 0; ; i++ {
		if err := s.Write(context.Background(), subject(i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Printf("written %d\n", i)
	}
}

// counter is a visitor noting where each record ends (a record is one subject here: its
// last item is the CAUSED_BY edge).
type counter struct {
	collector
	off  int64
	ends []int64
}

func (c *counter) edge(e *rawEdge) {
	c.collector.edge(e)
	if string(e.typ) == "CAUSED_BY" {
		c.off += int64(len(appendRecord(nil, c.g)))
		c.ends = append(c.ends, c.off)
		c.g = causal.Graph{}
	}
}
