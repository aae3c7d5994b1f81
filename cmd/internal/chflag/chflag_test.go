package chflag

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAuth(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	t.Setenv("KPROBE_CLICKHOUSE_PASSWORD", "")
	os.Unsetenv("KPROBE_CLICKHOUSE_PASSWORD")
	a, err := (&Flags{TLS: true, User: "kprobe", PasswordFile: pw}).Auth()
	if err != nil || a.User != "kprobe" || a.Password != "s3cret" || a.TLS == nil {
		t.Errorf("from a file: %+v, %v", a, err)
	}
	t.Setenv("KPROBE_CLICKHOUSE_PASSWORD", "envpw")
	if a, err = (&Flags{User: "kprobe"}).Auth(); err != nil || a.Password != "envpw" || a.TLS != nil {
		t.Errorf("from the environment: %+v, %v", a, err)
	}
	if _, err := (&Flags{User: "kprobe", PasswordFile: pw}).Auth(); err == nil {
		t.Error("a password in both places was accepted")
	}
	if _, err := (&Flags{}).Auth(); err == nil {
		t.Error("a password without a user was accepted")
	}
}
