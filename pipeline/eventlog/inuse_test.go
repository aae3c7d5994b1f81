package eventlog

import "testing"

// TestEmbeddedInUse: the engine open in this process holds its directory; a directory whose
// engine (another process) has stopped, and one never opened, are free.
func TestEmbeddedInUse(t *testing.T) {
	held := requireEngine(t)
	if in, err := EmbeddedInUse(held); err != nil || !in {
		t.Errorf("EmbeddedInUse(open store) = %v, %v; want true", in, err)
	}
	stopped := t.TempDir()
	if out, code := child(t, "populate", stopped); code != 0 {
		t.Fatalf("populating in a child: exit %d\n%s", code, out)
	}
	if in, err := EmbeddedInUse(stopped); err != nil || in {
		t.Errorf("EmbeddedInUse(stopped store) = %v, %v; want false", in, err)
	}
	if in, err := EmbeddedInUse(t.TempDir()); err != nil || in {
		t.Errorf("EmbeddedInUse(empty dir) = %v, %v; want false", in, err)
	}
}
