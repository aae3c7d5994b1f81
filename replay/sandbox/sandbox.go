package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Config says what to run and which syscalls stop.
type Config struct {
	Path   string   // the program, resolved (exec.LookPath)
	Args   []string // argv, argv[0] included
	Env    []string
	Dir    string
	Stdin  *os.File // nil: /dev/null
	Stdout *os.File // nil: /dev/null
	Stderr *os.File // nil: /dev/null
	Notify []int    // syscall numbers answered by Handler.Call
	Trace  []int    // syscall numbers that stop in Handler.Stop, registers editable
	Logger *slog.Logger
}

// Handler is what the sandbox calls back. Call runs on the supervisor goroutine, every
// other method on the tracer's thread; they may run at the same time.
type Handler interface {
	// Started is called once the program replaced the shim (its execve succeeded), before
	// it runs its first instruction.
	Started(pid int)
	// Call must answer c exactly once through l (now, or later from any goroutine). c
	// is reused for the next call once Call returns: copy it to answer later.
	Call(l *Listener, c *Call)
	// Stop is a thread stopped in the tracer: a Trace syscall at entry, or the exit of a
	// syscall that an earlier Stop asked to see (Stop.WantExit).
	Stop(s *Stop)
	// Spawned reports a new thread (thread) or process of the program.
	Spawned(parent, child int, thread bool)
	// Exited reports that a thread or process ended.
	Exited(tid int, status unix.WaitStatus)
}

// Exit is how the program ended.
type Exit struct {
	Code   int         // exit status, or 128+signal when killed
	Signal unix.Signal // the signal that killed it, or 0
}

func (e Exit) String() string {
	if e.Signal != 0 {
		return "killed by " + unix.SignalName(e.Signal)
	}
	return "exit status " + strconv.Itoa(e.Code)
}

// Stop is one thread stopped in the tracer. Its registers may be changed with SetRegs.
type Stop struct {
	TID  int
	Exit bool // at syscall exit (else at entry)
	Regs unix.PtraceRegs
	// WantExit asks for a second Stop when this syscall returns.
	WantExit bool
	// Resume, when set, delays the thread's resumption (delay_exit).
	Delay time.Duration
	dirty bool
}

// SetRegs marks the registers changed: they are written back before the thread resumes.
func (s *Stop) SetRegs() { s.dirty = true }

// Sandbox is a running program.
type Sandbox struct {
	cfg     Config
	h       Handler
	log     *slog.Logger
	pid     int
	l       *Listener
	started atomic.Bool
	done    atomic.Bool
	killed  atomic.Bool
	wg      sync.WaitGroup
}

// ptraceOptions: tracees die with the tracer; threads, children and execs are followed;
// Trace verdicts stop in the tracer.
const ptraceOptions = unix.PTRACE_O_EXITKILL | unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEFORK |
	unix.PTRACE_O_TRACEVFORK | unix.PTRACE_O_TRACEEXEC | unix.PTRACE_O_TRACESECCOMP | unix.PTRACE_O_TRACESYSGOOD

// Run starts the program and serves it until every thread of it has ended, or ctx ends
// (the program is then killed). Only a failure of the sandbox itself is an error: the
// program's own failures are in Exit.
func Run(ctx context.Context, cfg Config, h Handler) (Exit, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	filter, err := buildFilter(cfg.Notify, cfg.Trace)
	if err != nil {
		return Exit{}, err
	}
	self, err := os.Executable()
	if err != nil {
		return Exit{}, fmt.Errorf("sandbox: finding this binary to start the shim: %w", err)
	}
	s := &Sandbox{cfg: cfg, h: h, log: cfg.Logger.With("component", "sandbox")}
	type result struct {
		exit Exit
		err  error
	}
	res := make(chan result, 1)
	// Every ptrace request must come from the thread that attached: one locked thread
	// starts, seizes and waits for the program. It stays locked when the goroutine ends,
	// so Go retires the thread instead of reusing a tracer.
	go func() {
		runtime.LockOSThread()
		e, err := s.trace(ctx, self, filter)
		res <- result{e, err}
	}()
	r := <-res
	s.wg.Wait()
	return r.exit, r.err
}

func devNull(f *os.File) (*os.File, error) {
	if f != nil {
		return f, nil
	}
	return os.OpenFile(os.DevNull, os.O_RDWR, 0)
}

func (s *Sandbox) trace(ctx context.Context, self string, filter []unix.SockFilter) (Exit, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return Exit{}, fmt.Errorf("sandbox: %w", err)
	}
	defer cfgR.Close()
	defer cfgW.Close()
	var files [3]*os.File
	for i, f := range []*os.File{s.cfg.Stdin, s.cfg.Stdout, s.cfg.Stderr} {
		if files[i], err = devNull(f); err != nil {
			return Exit{}, fmt.Errorf("sandbox: %w", err)
		}
		if f == nil {
			defer files[i].Close()
		}
	}
	proc, err := os.StartProcess(self, []string{"kprobe-replay-shim"}, &os.ProcAttr{
		Env:   []string{shimEnv + "=1"},
		Files: []*os.File{files[0], files[1], files[2], cfgR},
		// Its own process group: the tracer waits for that group only, never for other
		// children of this process.
		Sys: &unix.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL},
	})
	if err != nil {
		return Exit{}, fmt.Errorf("sandbox: starting the shim: %w", err)
	}
	s.pid = proc.Pid
	proc.Release()
	cfgR.Close()
	// The options go with the seize: PTRACE_SETOPTIONS would need a stopped tracee.
	if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(s.pid), 0, ptraceOptions, 0, 0); e != 0 {
		unix.Kill(s.pid, unix.SIGKILL)
		s.reap()
		return Exit{}, fmt.Errorf("sandbox: ptrace seize: %w (needs CAP_SYS_PTRACE or a permissive kernel.yama.ptrace_scope)", e)
	}
	raw, err := json.Marshal(shimConfig{Path: s.cfg.Path, Args: s.cfg.Args, Env: s.cfg.Env, Dir: s.cfg.Dir, Filter: filter})
	if err == nil {
		_, err = cfgW.Write(raw)
	}
	cfgW.Close()
	if err != nil {
		unix.Kill(s.pid, unix.SIGKILL)
		s.reap()
		return Exit{}, fmt.Errorf("sandbox: configuring the shim: %w", err)
	}

	stopKill := context.AfterFunc(ctx, func() { s.Kill() })
	defer stopKill()
	exit, err := s.waitLoop()
	s.done.Store(true)
	if err == nil && !s.started.Load() && !s.killed.Load() {
		err = fmt.Errorf("sandbox: the program did not start (%s)", exit)
	}
	if err == nil && s.killed.Load() && ctx.Err() != nil {
		err = ctx.Err()
	}
	return exit, err
}

// Kill ends the program (every process of its group).
func (s *Sandbox) Kill() {
	s.killed.Store(true)
	unix.Kill(-s.pid, unix.SIGKILL)
}

func (s *Sandbox) reap() {
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(-s.pid, &ws, unix.WALL, nil); err != nil && err != unix.EINTR {
			return
		}
	}
}

// waitLoop handles every ptrace stop of the program's group until it is gone.
func (s *Sandbox) waitLoop() (Exit, error) {
	var exit Exit
	rootGone := false
	for {
		var ws unix.WaitStatus
		tid, err := unix.Wait4(-s.pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ECHILD {
			return exit, nil
		}
		if err != nil {
			return exit, fmt.Errorf("sandbox: wait: %w", err)
		}
		switch {
		case ws.Exited() || ws.Signaled():
			s.h.Exited(tid, ws)
			if tid == s.pid {
				rootGone = true
				if ws.Exited() {
					exit = Exit{Code: ws.ExitStatus()}
				} else {
					exit = Exit{Code: 128 + int(ws.Signal()), Signal: ws.Signal()}
				}
				// What the program left behind goes with it.
				unix.Kill(-s.pid, unix.SIGKILL)
			}
			continue
		case !ws.Stopped():
			continue
		}
		if rootGone {
			unix.PtraceCont(tid, 0)
			continue
		}
		if err := s.stopped(tid, ws); err != nil {
			s.Kill()
			s.reap()
			return exit, err
		}
	}
}

func (s *Sandbox) stopped(tid int, ws unix.WaitStatus) error {
	sig := ws.StopSignal()
	event := ws.TrapCause()
	switch {
	case sig == unix.SIGTRAP|0x80:
		return s.syscallStop(tid, true)
	case sig == unix.SIGTRAP && event > 0:
		switch event {
		case unix.PTRACE_EVENT_CLONE, unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK:
			child, err := unix.PtraceGetEventMsg(tid)
			if err == nil {
				s.h.Spawned(tid, int(child), event == unix.PTRACE_EVENT_CLONE && isThread(int(child), tid))
			}
		case unix.PTRACE_EVENT_EXEC:
			if tid == s.pid && s.started.CompareAndSwap(false, true) {
				s.h.Started(tid)
			}
		case unix.PTRACE_EVENT_SECCOMP:
			return s.syscallStop(tid, false)
		}
		return cont(tid, 0)
	case event == unix.PTRACE_EVENT_STOP:
		// A new tracee's first stop, or a group stop: either way it runs on.
		return cont(tid, 0)
	case sig == unix.SIGSTOP && tid == s.pid && s.l == nil:
		// The shim stopped itself with the filter installed: take its listener.
		if err := s.takeListener(); err != nil {
			return err
		}
		return cont(tid, 0)
	}
	// A signal for the program: deliver it (Go's runtime lives on SIGURG and others).
	return cont(tid, int(sig))
}

func cont(tid, sig int) error {
	if err := unix.PtraceCont(tid, sig); err != nil && err != unix.ESRCH {
		return fmt.Errorf("sandbox: resuming thread %d: %w", tid, err)
	}
	return nil
}

// isThread tells a CLONE_THREAD child (same thread group) from a clone()d process.
func isThread(child, parent int) bool {
	return Tgid(child) == Tgid(parent)
}

// Tgid returns the thread group (process) of a thread, -1 when it is gone.
func Tgid(tid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return -1
}

func (s *Sandbox) syscallStop(tid int, exit bool) error {
	st := Stop{TID: tid, Exit: exit}
	if err := unix.PtraceGetRegs(tid, &st.Regs); err != nil {
		if err == unix.ESRCH {
			return nil
		}
		return fmt.Errorf("sandbox: registers of thread %d: %w", tid, err)
	}
	s.h.Stop(&st)
	if st.dirty {
		if err := unix.PtraceSetRegs(tid, &st.Regs); err != nil && err != unix.ESRCH {
			return fmt.Errorf("sandbox: setting registers of thread %d: %w", tid, err)
		}
	}
	if st.Delay > 0 {
		// Other ptrace stops wait meanwhile (served calls do not): delay_exit is rare.
		time.Sleep(st.Delay)
	}
	if st.WantExit && !exit {
		if err := unix.PtraceSyscall(tid, 0); err != nil && err != unix.ESRCH {
			return fmt.Errorf("sandbox: resuming thread %d to its syscall exit: %w", tid, err)
		}
		return nil
	}
	return cont(tid, 0)
}

// takeListener copies the seccomp listener out of the stopped shim (pidfd_getfd) and
// starts the supervisor on it.
func (s *Sandbox) takeListener() error {
	dir := "/proc/" + strconv.Itoa(s.pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("sandbox: listing the shim's fds: %w", err)
	}
	target := -1
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && l == "anon_inode:seccomp notify" {
			target, _ = strconv.Atoi(e.Name())
		}
	}
	if target < 0 {
		return errors.New("sandbox: the shim stopped without a seccomp listener")
	}
	pidfd, err := unix.PidfdOpen(s.pid, 0)
	if err != nil {
		return fmt.Errorf("sandbox: pidfd_open: %w", err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, target, 0)
	if err != nil {
		return fmt.Errorf("sandbox: pidfd_getfd of the seccomp listener: %w (needs Linux 5.6+)", err)
	}
	s.l = &Listener{fd: fd}
	if err := s.l.syncWakeUp(); err != nil {
		// Slower (the supervisor wakes on another CPU), still correct.
		s.log.Warn("no sync wake-up for seccomp notifications (Linux < 6.6?)", "err", err)
	}
	s.wg.Add(1)
	go s.supervise()
	return nil
}

// supervise receives the program's notified syscalls and hands them to the Handler. It
// keeps its own thread so that the kernel's sync wake-up always finds it asleep there.
func (s *Sandbox) supervise() {
	defer s.wg.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer s.l.Close()
	var c Call
	for {
		err := s.l.receive(&c)
		if s.done.Load() {
			return
		}
		if err == ErrGone {
			// A withdrawn call (a signal), or no thread left: once the last thread is
			// gone, receive fails at once forever, and only poll tells (POLLHUP).
			if s.l.orphaned() {
				return
			}
			continue
		}
		if err != nil {
			s.log.Error("supervisor stops", "err", err)
			return
		}
		if !s.started.Load() {
			// The shim's own calls between the filter and execve.
			s.l.Continue(&c)
			continue
		}
		s.h.Call(s.l, &c)
	}
}
