package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	tea "charm.land/bubbletea/v2"

	"github.com/kprobe/kprobe/api/frontdoor"
	"github.com/kprobe/kprobe/cmd/internal/cli"
	"github.com/kprobe/kprobe/cmd/internal/wire"
	"github.com/kprobe/kprobe/ui"
)

// runSSH serves the workstation over SSH: the on-call SRE needs nothing installed.
func runSSH(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kprobe-agent ssh", flag.ContinueOnError)
	var listen, keys, hostKey, logLevel string
	var maxSessions int
	var src wire.Source
	src.Register(fs)
	fs.StringVar(&listen, "listen", env("SSH_LISTEN", ":2222"), "SSH listen address")
	fs.StringVar(&keys, "authorized-keys", env("SSH_AUTHORIZED_KEYS", ""), "authorized_keys file of the people let in (public keys only; re-read when it changes)")
	fs.StringVar(&hostKey, "host-key", env("SSH_HOST_KEY", defaultHostKey()), "the server's host key (created, ed25519, when missing)")
	fs.IntVar(&maxSessions, "max-sessions", 32, "sessions at once")
	fs.StringVar(&logLevel, "log-level", env("LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "usage: kprobe-agent ssh --authorized-keys FILE (--api HOST:PORT | --data DIR | --clickhouse ADDR --neo4j URI) [flags]\n\nEach SSH session gets its own workstation over the data: a kprobe API, or the stores themselves.\nWith --data, a recorder holding the directory ('kprobe-agent standalone') is read through its API socket.\nReplay is not offered over SSH: it runs programs, so it runs on the SRE's own machine (kprobe-tui replay --api).\n\n")
		fs.PrintDefaults()
	}
	if err := cli.Parse(fs, args, stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if keys == "" {
		return fmt.Errorf("--authorized-keys FILE is required: public keys are the only way in")
	}
	log, err := newLogger(stderr, logLevel)
	if err != nil {
		return err
	}
	src.Logger = log
	svc, err := src.Open(ctx)
	if err != nil {
		return err
	}
	defer svc.Close()
	exportDir, err := os.MkdirTemp("", "kprobe-ssh-reports-")
	if err != nil {
		return err
	}
	srv, err := frontdoor.New(frontdoor.Options{
		Logger: log, Addr: listen, HostKey: hostKey, AuthorizedKeys: keys, MaxSessions: maxSessions,
		Session: func(ctx context.Context, user string) tea.Model {
			return ui.New(ctx, ui.Options{Service: svc, Source: src.Flags(), ExportDir: exportDir,
				Logger: log.With("ssh_user", user)})
		},
	})
	if err != nil {
		return err
	}
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	log.Info("serving the workstation over SSH", "addr", ln.Addr().String(), "data", src.Flags(), "reports", exportDir)
	return srv.Serve(ctx, ln)
}

func defaultHostKey() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "kprobe", "ssh_host_ed25519_key")
}
