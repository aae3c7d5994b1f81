package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The recorder keeps the programs' own bytes (--payload-pid, --flight-recorder): no other
// local user may read them, whatever the modes of what was there before.

// nobody is the unprivileged user the tests read as.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}

// sharedDir is a directory every user may enter, so that only the modes under test decide
// what nobody reads (t.TempDir() is 0700 and would shut nobody out by itself).
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kprobe-private")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// nobodyReads runs cat on path as nobody and fails the test when it read anything.
func nobodyReads(t *testing.T, path string) {
	t.Helper()
	cmd := exec.Command("cat", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err == nil || out.Len() > 0 || !strings.Contains(errb.String(), "Permission denied") {
		t.Errorf("nobody read %s: %v, %d bytes, stderr %q; want permission denied", path, err, out.Len(), errb.String())
	}
}

// secretFile writes a secret into a world-readable file (so the program under test is
// the only way nobody could see it through kprobe) and returns its path and text.
func secretFile(t *testing.T, dir string) (string, string) {
	t.Helper()
	secret := "SECRET-" + strings.Repeat("k", 40)
	path := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, secret
}

// TestPayloadOutputIsPrivate: record --payload-pid writes the process's reads into
// --output; a file that was there, world-readable, is 0600 afterwards and nobody reads it.
func TestPayloadOutputIsPrivate(t *testing.T) {
	needRoot(t)
	dir := sharedDir(t)
	secret, text := secretFile(t, dir)
	out := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(out, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The shell's own read builtin reads the file, so its pid is the one reading.
	reader := exec.Command("sh", "-c", `while :; do read -r line < "$0"; sleep 0.05; done`, secret)
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Process.Kill(); reader.Wait() })
	pid := reader.Process.Pid

	cmd := exec.Command(agent(t), "record", "--pid", strconv.Itoa(pid), "--payload-pid", strconv.Itoa(pid), "--duration", "2s", "--output", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("record: %v\n%s", err, stderr.String())
	}
	// The bytes are there (root reads them back), and the file is the owner's only.
	var read []byte
	for _, e := range readJSONL(t, out) {
		if p, ok := e["payload"].(string); ok && e["syscall"] == "read" {
			b, err := base64.StdEncoding.DecodeString(p)
			if err != nil {
				t.Fatal(err)
			}
			read = append(read, b...)
		}
	}
	if !strings.Contains(string(read), text) {
		t.Fatalf("the reads of pid %d carried %q, want the secret among them\n%s", pid, read, stderr.String())
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("output mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	nobodyReads(t, out)
}

// TestDataIsPrivate: standalone tightens an existing world-readable --data to 0700, every
// file and directory the stores write (event log, embedded graph, flight recorder) is the
// owner's only, nobody reads any of them, and the recorded command keeps its own umask.
func TestDataIsPrivate(t *testing.T) {
	needRoot(t)
	dir := sharedDir(t)
	secret, text := secretFile(t, dir)
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	made := filepath.Join(dir, "made-by-the-command")
	cmd := exec.Command(agent(t), "standalone", "--data", data, "--flight-recorder", "--otlp-grpc", "", "--otlp-http", "", "--api", "",
		"--", "sh", "-c", `echo "pid=$$"; : > "$1"; exec cat "$0" > /dev/null`, secret, made)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("standalone: %v\n%s", err, stderr.String())
	}
	m := regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("the command printed no pid:\n%s", stderr.String())
	}

	// The recorded command created its file under the umask it was started with.
	old := syscall.Umask(0)
	syscall.Umask(old)
	if st, err := os.Stat(made); err != nil || st.Mode().Perm() != 0o666&^os.FileMode(old) {
		t.Errorf("the command's file: mode %v (%v), want %v: the recorder's umask leaked into it", st.Mode().Perm(), err, 0o666&^os.FileMode(old))
	}

	// The secret was recorded: root reads it back from the flight recording.
	events, err := tui(t, "events", "--data", data, "--pid", m[1])
	if err != nil {
		t.Fatalf("kprobe-tui events: %v\n%s", err, events)
	}
	if !strings.Contains(decodedPayloads(t, events), text) {
		t.Fatalf("the recording of pid %s holds no read of the secret:\n%s", m[1], events)
	}

	var files, dirs int
	err = filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeSymlink == 0 && info.Mode().Perm()&0o077 != 0 { // a symlink has no mode of its own
			t.Errorf("%s: mode %v, want nothing for group and others", path, info.Mode().Perm())
		}
		switch {
		case d.IsDir():
			dirs++
		case info.Mode().IsRegular():
			files++
			nobodyReads(t, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"events", "graph"} {
		if _, err := os.Stat(filepath.Join(data, sub)); err != nil {
			t.Errorf("no %s store under --data: %v", sub, err)
		}
	}
	if st, _ := os.Stat(data); st.Mode().Perm() != 0o700 {
		t.Errorf("--data mode %v, want 0700", st.Mode().Perm())
	}
	t.Logf("%d files in %d directories under --data, none readable by nobody", files, dirs)
}

// decodedPayloads joins the decoded payloads of the jsonl events in out.
func decodedPayloads(t *testing.T, out string) string {
	t.Helper()
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		if p, ok := e["payload"].(string); ok {
			raw, err := base64.StdEncoding.DecodeString(p)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(raw)
		}
	}
	return b.String()
}
