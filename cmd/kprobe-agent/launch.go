package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// launchArg is the hidden first argument with which kprobe-agent re-executes itself to
// start a recorded command: the child waits until the recorder has added its pid to the
// in-kernel filter, then execs the command under the same pid, so nothing it does is
// missed.
const launchArg = "__launch"

// launched is a command started under the recorder, held until release.
type launched struct {
	cmd     *exec.Cmd
	release *os.File
}

func launch(ctx context.Context, argv []string, stdout, stderr io.Writer) (*launched, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding own executable: %w", err)
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, fmt.Errorf("command %q: %w", argv[0], err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("launch pipe: %w", err)
	}
	cmd := exec.CommandContext(ctx, self, append([]string{launchArg}, argv...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.ExtraFiles = []*os.File{r}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("starting %q: %w", argv[0], err)
	}
	r.Close()
	return &launched{cmd: cmd, release: w}, nil
}

func (l *launched) pid() uint32 { return uint32(l.cmd.Process.Pid) }

// launcherComm is the kernel's name of the held child until it execs: the base name of
// this executable, cut to the 15 bytes the kernel keeps.
func launcherComm() string {
	self, err := os.Executable()
	if err != nil {
		return ""
	}
	name := filepath.Base(self)
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

// start lets the held command exec.
func (l *launched) start() error {
	defer l.release.Close()
	if _, err := l.release.Write([]byte{1}); err != nil {
		return fmt.Errorf("releasing launched command: %w", err)
	}
	return nil
}

// execLaunched runs in the re-executed child: wait for the release byte on fd 3, exec.
func execLaunched(argv []string) error {
	gate := os.NewFile(3, "launch-gate")
	var b [1]byte
	if n, _ := gate.Read(b[:]); n != 1 {
		return fmt.Errorf("recorder went away before %q started", argv[0])
	}
	gate.Close()
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}
