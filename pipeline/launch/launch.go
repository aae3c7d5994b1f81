package launch

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Arg is the hidden first argument with which a binary re-executes itself as the
// launcher: its main must hand the arguments after it to Exec before anything else.
const Arg = "__launch"

// gateFD is the launcher's end of the release pipe: the first of cmd.ExtraFiles.
const gateFD = 3

// umaskEnv hands the launcher the umask this process started with: a recorder keeping
// its stores private narrows its own (umask 077), and the program must not inherit that.
const umaskEnv = "KPROBE_LAUNCH_UMASK"

// startUmask is read at init, before anything in this process changes it.
var startUmask = func() int {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return m
}()

// Options configures Start.
type Options struct {
	// Stdin, Stdout and Stderr are the program's; nil Stdin is this process's stdin,
	// nil Stdout and Stderr discard.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Held is a program started and held before it runs.
type Held struct {
	cmd     *exec.Cmd
	release *os.File
	comm    string
}

// Start starts argv held: the launcher runs under the pid the program will have, and
// waits for Release. When ctx ends the program gets SIGTERM.
func Start(ctx context.Context, argv []string, opts Options) (*Held, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("launch: no command given")
	}
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
	cmd := exec.CommandContext(ctx, self, append([]string{Arg}, argv...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = opts.Stdin, opts.Stdout, opts.Stderr
	if cmd.Stdin == nil {
		cmd.Stdin = os.Stdin
	}
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%o", umaskEnv, startUmask))
	cmd.ExtraFiles = []*os.File{r}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("starting %q: %w", argv[0], err)
	}
	r.Close()
	return &Held{cmd: cmd, release: w, comm: comm(self)}, nil
}

// comm is the kernel's name of a process running path until it execs something else:
// the base name, cut to the 15 bytes the kernel keeps.
func comm(path string) string {
	name := filepath.Base(path)
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

// PID is the program's pid (the launcher's until it execs).
func (h *Held) PID() uint32 { return uint32(h.cmd.Process.Pid) }

// Release lets the program run.
func (h *Held) Release() error {
	defer h.release.Close()
	if _, err := h.release.Write([]byte{1}); err != nil {
		return fmt.Errorf("releasing launched command: %w", err)
	}
	return nil
}

// Abort ends a program that was never released: the launcher exits without running it.
func (h *Held) Abort() {
	h.release.Close()
	h.cmd.Wait()
}

// Wait waits for the program to exit.
func (h *Held) Wait() error { return h.cmd.Wait() }

// Skip returns a predicate that reports the launcher's own activity: what the pid did
// under the launcher's name before it exec'd the program. Events of one stream come in
// order, so the first one of that pid under another name marks the exec; after it every
// event is the program's, whatever its name. Each stream needs its own predicate, used
// from one goroutine.
func (h *Held) Skip() func(pid uint32, comm string) bool {
	pid, launcher := h.PID(), h.comm
	execed := false
	return func(p uint32, c string) bool {
		if execed || p != pid {
			return false
		}
		if c != launcher {
			execed = true
			return false
		}
		return true
	}
}

// Exec is the launcher: it waits for the release on its gate, then execs argv in place.
// It returns only on failure.
func Exec(argv []string) error {
	if len(argv) == 0 {
		return fmt.Errorf("launch: no command given")
	}
	gate := os.NewFile(gateFD, "launch-gate")
	var b [1]byte
	if n, _ := gate.Read(b[:]); n != 1 {
		return fmt.Errorf("recorder went away before %q started", argv[0])
	}
	gate.Close()
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, restoreUmask(os.Environ()))
}

// restoreUmask sets the umask the recorder started with and returns env without the
// variable that carried it.
func restoreUmask(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, umaskEnv+"="); ok {
			if m, err := strconv.ParseUint(v, 8, 32); err == nil {
				syscall.Umask(int(m))
			}
			continue
		}
		out = append(out, kv)
	}
	return out
}
