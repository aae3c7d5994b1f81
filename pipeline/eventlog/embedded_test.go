package eventlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// chDB runs one engine on one data directory per process, so the whole package shares
// one directory: TestMain keeps a store open on it for the run (the engine then boots
// once), and each test opens its own database inside it. Tests that need another
// directory or a missing library run this test binary again as a child (helperEnv).

var shared struct {
	once  sync.Once
	dir   string
	store *Log
	err   error
}

const helperEnv = "EVENTLOG_TEST_HELPER"

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(h))
	}
	code := m.Run()
	if shared.store != nil {
		shared.store.Close()
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// requireEngine returns the package's data directory, booting the engine on first use
// (lazily, so fuzz workers and driver-only tests never load the library). It skips only
// where CHDB_LIB_PATH is unset and the default cache is empty, never in CI (make test
// fetches the library first).
func requireEngine(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(LibraryPath()); err != nil {
		t.Skipf("embedded ClickHouse engine not found at %s (CHDB_LIB_PATH unset or empty cache): run scripts/chdb/fetch.sh", LibraryPath())
	}
	shared.once.Do(func() {
		if shared.dir, shared.err = os.MkdirTemp("", "eventlog-test-"); shared.err != nil {
			return
		}
		shared.store, shared.err = OpenEmbedded(context.Background(), shared.dir, Options{Database: "main_test"})
	})
	if shared.err != nil {
		t.Fatalf("opening the shared embedded store: %v", shared.err)
	}
	return shared.dir
}

func openEmbeddedTest(t *testing.T, opts Options) *Log {
	t.Helper()
	dir := requireEngine(t)
	if opts.Database == "" {
		opts.Database = testDatabase()
	}
	s, err := OpenEmbedded(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("OpenEmbedded: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestEmbeddedContract(t *testing.T) {
	requireEngine(t)
	runContract(t, openEmbeddedTest)
}

func TestEmbeddedSecondDirectory(t *testing.T) {
	requireEngine(t)
	_, err := OpenEmbedded(context.Background(), t.TempDir(), Options{})
	if !errors.Is(err, ErrEngineInUse) {
		t.Fatalf("OpenEmbedded on a second directory: err = %v, want ErrEngineInUse", err)
	}
}

func TestEmbeddedClosedStore(t *testing.T) {
	s := openEmbeddedTest(t, Options{})
	s.Close()
	if _, err := s.Events(context.Background(), Query{}); !errors.Is(err, errClosed) {
		t.Errorf("Events after Close: err = %v, want errClosed", err)
	}
	if err := s.Insert(context.Background(), fullEvents()); !errors.Is(err, errClosed) {
		t.Errorf("Insert after Close: err = %v, want errClosed", err)
	}
	// Other stores on the engine keep working.
	if _, err := openEmbeddedTest(t, Options{}).Count(context.Background(), Query{}); err != nil {
		t.Errorf("Count on another store: %v", err)
	}
}

func TestOpenEmbeddedBadOptions(t *testing.T) {
	for _, opts := range []Options{{Database: "x; DROP"}, {Database: "1abc"}, {RetentionDays: -1}} {
		if _, err := OpenEmbedded(context.Background(), t.TempDir(), opts); err == nil {
			t.Errorf("OpenEmbedded(%+v) succeeded", opts)
		}
	}
}

// runHelper is the child side of the tests that need a fresh process.
func runHelper(mode string) int {
	ctx := context.Background()
	dir := os.Getenv("EVENTLOG_TEST_DIR")
	switch mode {
	case "events":
		s, err := OpenEmbedded(ctx, dir, Options{})
		if err != nil {
			fmt.Println("ERROR:", err)
			return 3
		}
		defer s.Close()
		evs, err := s.Events(ctx, Query{})
		if err != nil {
			fmt.Println("ERROR:", strings.ReplaceAll(err.Error(), "\n", " "))
			return 3
		}
		fmt.Println("EVENTS:", len(evs))
		return 0
	case "open", "populate", "populate-half":
		s, err := OpenEmbedded(ctx, dir, Options{})
		if err != nil {
			fmt.Println("ERROR:", err)
			return 3
		}
		if mode != "open" {
			evs := fullEvents()
			if mode == "populate-half" {
				evs = evs[:len(evs)/2]
			}
			if err := s.Insert(ctx, evs); err != nil {
				fmt.Println("ERROR:", err)
				return 3
			}
		}
		n, err := s.Count(ctx, Query{})
		if err != nil {
			fmt.Println("ERROR:", err)
			return 3
		}
		fmt.Println("COUNT:", n)
		if err := s.Close(); err != nil {
			fmt.Println("ERROR:", err)
			return 3
		}
		return 0
	}
	fmt.Println("unknown helper mode", mode)
	return 2
}

// child runs mode in a fresh process and returns its output and exit code.
func child(t *testing.T, mode, dir string, env ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "EVENTLOG_TEST_DIR="+dir)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running helper: %v", err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// lastLine is the helper's verdict: chDB may log above it.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

func TestOpenEmbeddedMissingLibrary(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nowhere", "libchdb.so")
	out, code := child(t, "open", t.TempDir(), "CHDB_LIB_PATH="+missing)
	want := "ERROR: embedded ClickHouse engine (libchdb.so) not found at " + missing +
		": run `make chdb` or scripts/chdb/fetch.sh, or set CHDB_LIB_PATH"
	if code != 3 || lastLine(out) != want {
		t.Errorf("missing library: exit %d, output:\n%s\nwant exit 3 and last line %q", code, out, want)
	}
}

func TestOpenEmbeddedNotALibrary(t *testing.T) {
	bogus := filepath.Join(t.TempDir(), "libchdb.so")
	if err := os.WriteFile(bogus, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := child(t, "open", t.TempDir(), "CHDB_LIB_PATH="+bogus)
	line := lastLine(out)
	if code != 3 || !strings.HasPrefix(line, "ERROR: loading embedded ClickHouse engine from "+bogus) || !strings.Contains(line, "fetch.sh") {
		t.Errorf("bogus library: exit %d, output:\n%s", code, out)
	}
}

func TestOpenEmbeddedDirIsAFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenEmbedded(context.Background(), f, Options{}); err == nil || !strings.Contains(err.Error(), "creating data directory") {
		t.Errorf("OpenEmbedded on a file: err = %v", err)
	}
}

func TestOpenEmbeddedCorruptDirectory(t *testing.T) {
	requireEngine(t) // the children need the library
	populate := func(t *testing.T) string {
		t.Helper()
		dir := t.TempDir()
		if out, code := child(t, "populate", dir); code != 0 || lastLine(out) != fmt.Sprintf("COUNT: %d", len(fullEvents())) {
			t.Fatalf("populate: exit %d:\n%s", code, out)
		}
		return dir
	}
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, dir string)
		mode    string
		want    string // prefix of the child's last line
	}{
		{"database metadata", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "metadata", DefaultDatabase+".sql"), "garbage ))) (")
		}, "open", "ERROR: embedded ClickHouse could not open "},
		{"table metadata", func(t *testing.T, dir string) {
			m, _ := filepath.Glob(filepath.Join(dir, "store", "*", "*", Table+".sql"))
			if len(m) != 1 {
				t.Fatalf("table metadata: found %v", m)
			}
			writeFile(t, m[0], "CREATE TABLE (((")
		}, "open", "ERROR: embedded ClickHouse could not open "},
		{"column data", func(t *testing.T, dir string) {
			m, _ := filepath.Glob(filepath.Join(dir, "store", "*", "*", "*", "data.bin"))
			if len(m) != 1 {
				t.Fatalf("data.bin: found %v", m)
			}
			b, err := os.ReadFile(m[0])
			if err != nil {
				t.Fatal(err)
			}
			for i := 20; i < len(b); i += 3 {
				b[i] ^= 0x5a
			}
			writeFile(t, m[0], string(b))
		}, "events", "ERROR: querying events: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := populate(t)
			tc.corrupt(t, dir)
			out, code := child(t, tc.mode, dir)
			if code != 3 || !strings.HasPrefix(lastLine(out), tc.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit 3 and a last line starting %q", code, out, tc.want)
			}
		})
	}
}

func TestOpenEmbeddedDirectoryInUse(t *testing.T) {
	dir := requireEngine(t)
	// This process holds dir; a second process must be refused, cleanly, told which
	// process holds it, and not advised to move a healthy store aside.
	out, code := child(t, "open", dir)
	held := fmt.Sprintf("ERROR: embedded event log %s is in use by pid %d (", dir, os.Getpid())
	if last := lastLine(out); code != 3 || !strings.HasPrefix(last, held) || strings.Contains(last, "aside") {
		t.Errorf("exit %d, output:\n%s\nwant exit 3 and a last line starting %q", code, out, held)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
