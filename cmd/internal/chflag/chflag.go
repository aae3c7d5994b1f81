// Package chflag holds the flags of a secured ClickHouse server (TLS and credentials),
// shared by the commands that take --clickhouse. The password comes from a file or the
// environment, never from argv.
package chflag

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/pipeline/certs"
	"github.com/kprobe/kprobe/pipeline/eventlog"
)

// Flags are --clickhouse-tls, --clickhouse-ca, --clickhouse-user and
// --clickhouse-password-file.
type Flags struct {
	TLS          bool
	CA           string
	User         string
	PasswordFile string
}

// Register adds the flags to fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	cli.BoolVar(fs, &f.TLS, "clickhouse-tls", "CLICKHOUSE_TLS", false, "speak TLS to --clickhouse (implied by --clickhouse-ca)")
	fs.StringVar(&f.CA, "clickhouse-ca", os.Getenv("KPROBE_CLICKHOUSE_CA"), "CA certificate (PEM) of the ClickHouse server (default: the system's roots)")
	fs.StringVar(&f.User, "clickhouse-user", os.Getenv("KPROBE_CLICKHOUSE_USER"), "ClickHouse user")
	fs.StringVar(&f.PasswordFile, "clickhouse-password-file", os.Getenv("KPROBE_CLICKHOUSE_PASSWORD_FILE"), "file holding the ClickHouse password (or set KPROBE_CLICKHOUSE_PASSWORD)")
}

// Auth resolves the flags.
func (f *Flags) Auth() (eventlog.ServerAuth, error) {
	var a eventlog.ServerAuth
	if f.TLS || f.CA != "" {
		a.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		if f.CA != "" {
			pool, err := certs.Pool("--clickhouse-ca", f.CA)
			if err != nil {
				return a, err
			}
			a.TLS.RootCAs = pool
		}
	}
	a.User = f.User
	pw, inEnv := os.LookupEnv("KPROBE_CLICKHOUSE_PASSWORD")
	switch {
	case inEnv && f.PasswordFile != "":
		return a, errors.New("give the ClickHouse password in KPROBE_CLICKHOUSE_PASSWORD or --clickhouse-password-file, not both")
	case f.PasswordFile != "":
		b, err := os.ReadFile(f.PasswordFile)
		if err != nil {
			return a, fmt.Errorf("--clickhouse-password-file: %w", err)
		}
		pw = strings.TrimRight(string(b), "\r\n")
	}
	if pw != "" && a.User == "" {
		return a, errors.New("a ClickHouse password without --clickhouse-user")
	}
	a.Password = pw
	return a, nil
}
