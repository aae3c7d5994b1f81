package eventlog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/event"
)

// nativeEvents is evs as an insert's spool file holds them.
func nativeEvents(t *testing.T, evs []event.Event) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := (eventsOut{rowsOut[event.Event]{events, evs}}).writeNative(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestEmbeddedSpoolRecovery: what a killed writer leaves in the spool directory is judged
// at the next start. A complete file is inserted, once in every result even when it had
// been inserted before the kill; a file cut short (being written, or from a version that
// did not mark complete files) is removed; nothing is left behind.
func TestEmbeddedSpoolRecovery(t *testing.T) {
	requireEngine(t)
	dir := t.TempDir()
	all := fullEvents()
	stored, pending := all[:len(all)/2], all[len(all)/2:]
	if out, code := child(t, "populate-half", dir); code != 0 {
		t.Fatalf("populating: exit %d\n%s", code, out)
	}
	spool := filepath.Join(dir, "kprobe-spool")
	half := nativeEvents(t, pending)
	half = half[:len(half)/2]
	for name, data := range map[string][]byte{
		"insert-events-1.native": nativeEvents(t, stored),  // inserted, then killed before its removal
		"insert-events-2.native": nativeEvents(t, pending), // killed during its insert
		"insert-events-3.part":   nativeEvents(t, all),     // killed while writing it
		"insert-4":               half,                     // an older version's, cut short
	} {
		if err := os.WriteFile(filepath.Join(spool, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, code := child(t, "open", dir)
	if code != 0 {
		t.Fatalf("reopening: exit %d\n%s", code, out)
	}
	if diff := cmp.Diff(fmt.Sprint("COUNT: ", len(all)), lastLine(out)); diff != "" {
		t.Errorf("events after recovery (-want +got):\n%s\n%s", diff, out)
	}
	left, _ := filepath.Glob(filepath.Join(spool, "*"))
	if len(left) != 0 {
		t.Errorf("spool files left after recovery: %v", left)
	}
}
