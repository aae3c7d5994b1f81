package certs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not pem"), 0o600)
	for name, err := range map[string]error{
		"missing CA":   func() error { _, err := Pool("--api-ca", filepath.Join(dir, "none")); return err }(),
		"no PEM":       func() error { _, err := Pool("--api-ca", junk); return err }(),
		"cert alone":   func() error { _, err := KeyPair("--api-cert", junk, ""); return err }(),
		"bad key pair": func() error { _, err := KeyPair("--api-cert", junk, junk); return err }(),
	} {
		if err == nil || !strings.Contains(err.Error(), "--api-") {
			t.Errorf("%s: %v, want an error naming the setting", name, err)
		}
	}
	if c, err := KeyPair("x", "", ""); c != nil || err != nil {
		t.Errorf("no key pair: %v %v", c, err)
	}
}
