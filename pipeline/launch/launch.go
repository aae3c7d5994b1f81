package launch

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
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

// StopGrace is how long a program has to exit after the SIGTERM that a stop sends it
// before it is killed.
const StopGrace = 5 * time.Second

// Held is a program started and held before it runs.
type Held struct {
	cmd     *exec.Cmd
	ctx     context.Context
	release *os.File
	comm    string
	done    chan struct{} // closed once the program has exited and waitErr is set
	waitErr error
}

// Start starts argv held: the launcher runs under the pid the program will have, and
// waits for Release. When ctx ends the program gets SIGTERM, and SIGKILL StopGrace later.
// The program is killed too when this process dies (kill -9, an OOM kill): a crashed
// recorder must not leave unrecorded work running.
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
	cmd.WaitDelay = StopGrace
	// PR_SET_PDEATHSIG survives the launcher's exec of the program.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	h := &Held{cmd: cmd, ctx: ctx, release: w, comm: comm(self), done: make(chan struct{})}
	started := make(chan error, 1)
	go h.run(started)
	err = <-started
	r.Close()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("starting %q: %w", argv[0], err)
	}
	return h, nil
}

// run starts the launcher and waits for it on one locked OS thread. The kernel sends the
// parent-death signal when the thread that forked the child exits, not the process: Go
// ends a thread when a goroutine locked to it returns, so the forking thread stays locked
// here, out of every other goroutine's reach, until the program is gone.
func (h *Held) run(started chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := h.cmd.Start(); err != nil {
		close(h.done)
		started <- err
		return
	}
	started <- nil
	h.waitErr = h.cmd.Wait()
	close(h.done)
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
	<-h.done
}

// Wait waits for the program to exit.
func (h *Held) Wait() error {
	<-h.done
	return h.waitErr
}

// Stopped reports whether the program was asked to stop: Start's ctx ended. A program that
// ends then ends because it was told to, whatever its status says.
func (h *Held) Stopped() bool { return h.ctx.Err() != nil }

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
	// The parent-death signal set at fork belongs to the launcher's first thread; an exec
	// from any other thread of this Go program would drop it (the exec'ing thread takes
	// the process over with its own, unset). Set it again on the thread that execs.
	runtime.LockOSThread()
	parent := os.Getppid()
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
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); e != 0 {
		return fmt.Errorf("tying %q to the recorder: %w", argv[0], e)
	}
	if os.Getppid() != parent {
		return fmt.Errorf("recorder went away before %q started", argv[0])
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
