package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/eventlog"
)

// badRun is one run of a built binary that must fail with one line on stderr.
type badRun struct {
	bin  string // kprobe-tui or kprobe-demo
	args []string
	env  []string // KEY=VALUE added to a clean KPROBE_ environment
	want string   // the whole line, after "bin: "
}

// runBad runs r as a user would (the binary, its exit status and its stderr) and returns
// the lines it printed on stderr; it fails the test when the command succeeded.
func runBad(t *testing.T, r badRun, cred *syscall.Credential) []string {
	t.Helper()
	cmd := exec.Command(filepath.Join(bins(t), r.bin), r.args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KPROBE_") || strings.HasPrefix(kv, "KPROBE_CACHE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, r.env...)
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("%s %q: %v, want a failure exit\nstdout:\n%s\nstderr:\n%s", r.bin, r.args, err, stdout.String(), stderr.String())
	}
	if stdout.Len() > 0 {
		t.Errorf("stdout %q, want nothing on a failure", stdout.String())
	}
	return strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
}

// TestBadInputIsOneLine: every mistake on the command line or in the environment ends
// the binary with a failure status and exactly one line naming it (no usage dump, no
// panic, no error printed twice).
func TestBadInputIsOneLine(t *testing.T) {
	data := t.TempDir() // no event log: the flags must be refused before it is looked for
	tests := []badRun{
		{"kprobe-tui", []string{"settlements", "--data", data, "--events", "-1"}, nil, "--events -1: want 0 (none) or more"},
		{"kprobe-tui", []string{"events", "--data", data, "--pid", "1", "--limit", "-5"}, nil, "--limit -5: want 0 (all) or more"},
		{"kprobe-tui", []string{"events", "--data", data, "--from", "20", "--to", "10"}, nil, "--from 20 is not before --to 10: the window is empty"},
		{"kprobe-tui", []string{"settlements", "--data", data, "--from", "2026-11-25T10:00:00Z", "--to", "2026-11-25T09:00:00Z"}, nil, "--from 2026-11-25T10:00:00Z is not before --to 2026-11-25T09:00:00Z: the window is empty"},
		{"kprobe-tui", []string{"events", "--data", data, "--to", "-5"}, nil, `--to "-5": before the epoch (1970): nothing was recorded then`},
		{"kprobe-tui", []string{"replay", "--data", data, "--pid", "7", "--from", "9", "--to", "9", "--", "true"}, nil, "replay: --from 9 is not before --to 9: the window is empty"},
		// --from 0 is a selection (everything since 1970): it reaches the store.
		{"kprobe-tui", []string{"events", "--data", data, "--from", "0"}, nil, "no event log under " + data + ": record one with 'kprobe-agent standalone --data " + data + "'"},
		{"kprobe-tui", []string{"events", "--data", data, "--pid", "1", "stray"}, nil, `unexpected argument "stray" (kprobe-tui events takes flags only; kprobe-tui events --help lists them)`},
		{"kprobe-tui", []string{"settlements", "--data", data, "stray"}, nil, `unexpected argument "stray" (kprobe-tui settlements takes flags only; kprobe-tui settlements --help lists them)`},
		{"kprobe-tui", []string{"report", "--data", data, "--settlement", "1", "stray"}, nil, `unexpected argument "stray" (kprobe-tui report takes flags only; kprobe-tui report --help lists them)`},
		{"kprobe-tui", []string{"chain", "--data", data, "--settlement", "1", "stray"}, nil, `unexpected argument "stray" (kprobe-tui chain takes flags only; kprobe-tui chain --help lists them)`},
		{"kprobe-tui", []string{"import", "--data", data, "a.kpds", "b.kpds"}, nil, "give --data DIR and one dataset file (usage: kprobe-tui import --data DIR DATASET)"},
		{"kprobe-tui", []string{"--data", data, "stray"}, nil, `unknown command "stray" (see kprobe-tui help)`},
		{"kprobe-tui", []string{"settlements", "--bogus"}, nil, "flag provided but not defined: -bogus (kprobe-tui settlements --help lists the flags)"},
		{"kprobe-tui", []string{"events", "--limit", "many"}, nil, `invalid value "many" for flag -limit: parse error (kprobe-tui events --help lists the flags)`},
		{"kprobe-tui", []string{"chain", "--bogus"}, nil, "flag provided but not defined: -bogus (kprobe-tui chain --help lists the flags)"},
		{"kprobe-tui", []string{"report", "--bogus"}, nil, "flag provided but not defined: -bogus (kprobe-tui report --help lists the flags)"},
		{"kprobe-tui", []string{"import", "--bogus"}, nil, "flag provided but not defined: -bogus (kprobe-tui import --help lists the flags)"},
		{"kprobe-tui", []string{"--bogus"}, nil, "flag provided but not defined: -bogus (kprobe-tui --help lists the flags)"},
		{"kprobe-tui", []string{"events", "--clickhouse", "127.0.0.1:1", "--pid", "1"}, []string{"KPROBE_CLICKHOUSE_TLS=yes"}, `KPROBE_CLICKHOUSE_TLS="yes": want true or false`},
		{"kprobe-demo", []string{"--bogus"}, nil, "flag provided but not defined: -bogus (kprobe-demo --help lists the flags)"},
		{"kprobe-demo", []string{"stray"}, nil, `unexpected arguments ["stray"] (kprobe-demo takes flags only)`},
	}
	for _, tt := range tests {
		t.Run(tt.bin+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			got := runBad(t, tt, nil)
			want := tt.bin + ": " + tt.want
			if strings.HasPrefix(tt.want, "replay: ") {
				want = tt.want // replay prefixes its own lines (replay.go)
			}
			if diff := cmp.Diff([]string{want}, got); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHelpPrintsUsage: -h is not an error: the usage goes to stdout, status 0.
func TestHelpPrintsUsage(t *testing.T) {
	for _, argv := range [][]string{
		{"kprobe-tui", "--help"}, {"kprobe-tui", "settlements", "--help"}, {"kprobe-tui", "events", "-h"},
		{"kprobe-tui", "chain", "--help"}, {"kprobe-tui", "report", "--help"}, {"kprobe-tui", "import", "--help"},
		{"kprobe-demo", "--help"},
	} {
		t.Run(strings.Join(argv, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(filepath.Join(bins(t), argv[0]), argv[1:]...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v: %v\n%s", argv, err, stderr.String())
			}
			if !strings.Contains(stdout.String(), "usage: ") && !strings.Contains(stdout.String(), "Usage of ") {
				t.Errorf("stdout has no usage:\n%s", stdout.String())
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr %q, want nothing", stderr.String())
			}
		})
	}
}

// nobody is the unprivileged user the permission tests read as.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}

// TestUnreadableIsPermissionDenied: a user who may not read the event log or the engine
// library is told so, not told that there is nothing there.
func TestUnreadableIsPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a reader as another user")
	}
	if _, err := os.Stat(eventlog.LibraryPath()); err != nil {
		t.Skipf("embedded ClickHouse engine not found at %s: run scripts/chdb/fetch.sh", eventlog.LibraryPath())
	}
	// A parent every user may cross, so that only the modes under test decide.
	top, err := os.MkdirTemp("", "kprobe-perm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bins(t), 0o755); err != nil { // nobody runs them
		t.Fatal(err)
	}
	// A store recorded by root.
	data := filepath.Join(top, "data")
	tui(t, "import", "--data", data, filepath.Join("..", "..", "testdata", "demo", "incident-slow-storage.kpds"))

	// A library nobody may reach, beside an event log directory it may read.
	hidden := filepath.Join(top, "hidden")
	if err := os.Mkdir(hidden, 0o700); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(hidden, "libchdb.so")
	if err := os.Symlink(eventlog.LibraryPath(), lib); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(top, "open")
	if err := os.MkdirAll(eventlog.EmbeddedDir(open), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []badRun{
		{"kprobe-tui", []string{"events", "--data", data, "--pid", "1"}, nil,
			"reading the event log under " + data + ": permission denied: it is readable by the user who recorded it only (run as that user, or as root)"},
		{"kprobe-tui", []string{"settlements", "--data", data}, nil,
			"reading the event log under " + data + ": permission denied: it is readable by the user who recorded it only (run as that user, or as root)"},
		{"kprobe-tui", []string{"events", "--data", open, "--pid", "1"}, []string{"CHDB_LIB_PATH=" + lib},
			"embedded ClickHouse engine (libchdb.so) at " + lib + ": permission denied: make it readable to this user, or set CHDB_LIB_PATH to a copy it can read"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got := runBad(t, tt, nobody)
			if diff := cmp.Diff([]string{tt.bin + ": " + tt.want}, got); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
	// The same reads succeed as root: the failures above are the modes, not the store.
	out, _ := tui(t, "settlements", "--data", data, "--top", "1")
	if !strings.Contains(out, "settlement") {
		t.Errorf("root's settlements printed %q", out)
	}
}
