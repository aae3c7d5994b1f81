package frontdoor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"charm.land/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// authorizedKeys is an authorized_keys file, re-read when its modification time changes,
// so a key is added or revoked without a restart.
type authorizedKeys struct {
	path string

	mu    sync.Mutex
	mtime time.Time
	keys  map[string]bool // by the key's wire form
}

func loadAuthorizedKeys(path string) (*authorizedKeys, error) {
	a := &authorizedKeys{path: path}
	if err := a.reload(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *authorizedKeys) reload() error {
	st, err := os.Stat(a.path)
	if err != nil {
		return fmt.Errorf("authorized keys: %w", err)
	}
	if st.ModTime().Equal(a.mtime) && a.keys != nil {
		return nil
	}
	b, err := os.ReadFile(a.path)
	if err != nil {
		return fmt.Errorf("authorized keys: %w", err)
	}
	keys, err := parseAuthorizedKeys(b)
	if err != nil {
		return fmt.Errorf("authorized keys %s: %w", a.path, err)
	}
	a.keys, a.mtime = keys, st.ModTime()
	return nil
}

// parseAuthorizedKeys reads OpenSSH authorized_keys lines (options and comments allowed);
// a line that is not a key is an error naming it, not a silent skip.
func parseAuthorizedKeys(b []byte) (map[string]bool, error) {
	keys := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		k, _, _, _, err := gossh.ParseAuthorizedKey(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: not a public key: %w", n, err)
		}
		keys[string(k.Marshal())] = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys in it")
	}
	return keys, nil
}

// contains reports whether key is authorized now. If the file became unreadable or
// malformed, the keys last read stay in force, rather than locking everyone out
// mid-incident; the error says why the edit was not taken.
func (a *authorizedKeys) contains(key ssh.PublicKey) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	err := a.reload()
	return a.keys[string(key.Marshal())], err
}

func fingerprint(k ssh.PublicKey) string { return gossh.FingerprintSHA256(k) }
