package embedded

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzDecodePayload: a record's payload from disk decodes or fails, never panics, and
// what decodes encodes back to the same graph.
func FuzzDecodePayload(f *testing.F) {
	for i := range 3 {
		f.Add(appendRecord(nil, subject(i))[headerSize:])
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := decodePayload(b)
		if err != nil {
			return
		}
		again, err := decodePayload(appendRecord(nil, g)[headerSize:])
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if diff := cmp.Diff(g, again, cmpopts.EquateEmpty(), cmpopts.EquateNaNs()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

// FuzzReplay: any file content replays without panicking, applies only whole records,
// and reports where the good part ends within the file.
func FuzzReplay(f *testing.F) {
	valid := []byte(magic)
	for i := range 3 {
		valid = appendRecord(valid, subject(i))
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-4])
	f.Add([]byte(magic))
	f.Add([]byte("KPGRAPH\x02"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "log")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		good, damage := replay(fh, newGraph(0))
		if good > int64(len(b)) {
			t.Fatalf("good prefix %d beyond the file's %d bytes", good, len(b))
		}
		if damage == nil && good != int64(len(b)) {
			t.Fatalf("no damage reported but only %d of %d bytes read", good, len(b))
		}
	})
}
