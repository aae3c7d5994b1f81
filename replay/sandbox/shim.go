package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The shim is this very binary, started again with shimEnv set: package init runs it on
// the main thread (Go locks the main goroutine there during init), before anything else
// of the program starts. It installs the seccomp filter, stops itself so that the tracer
// can take the filter's listener, and executes the target program in its place. Go gives
// no hook between fork and exec, and the listener is close-on-exec, so a helper that runs
// first is the one way to get both the filter and its listener from Go alone.
const shimEnv = "KPROBE_SANDBOX_SHIM"

// shimFD is where the shim reads its shimConfig: the tracer writes it only after it has
// seized the shim, so the shim cannot run ahead of the tracer.
const shimFD = 3

type shimConfig struct {
	Path   string            `json:"path"`
	Args   []string          `json:"args"`
	Env    []string          `json:"env"`
	Dir    string            `json:"dir,omitempty"`
	Filter []unix.SockFilter `json:"filter"`
	Close  []int             `json:"close,omitempty"`
}

func init() {
	if os.Getenv(shimEnv) == "" {
		return
	}
	err := runShim()
	// Only failures return: the shim's stderr is the program's, so say who speaks.
	fmt.Fprintf(os.Stderr, "replay: %v\n", err)
	os.Exit(127)
}

func runShim() error {
	f := os.NewFile(shimFD, "sandbox-config")
	raw, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("sandbox: reading the shim's configuration: %w", err)
	}
	var cfg shimConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("sandbox: decoding the shim's configuration: %w", err)
	}
	if cfg.Dir != "" {
		if err := os.Chdir(cfg.Dir); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
	}
	if len(cfg.Filter) == 0 {
		return fmt.Errorf("sandbox: empty filter")
	}
	prog := unix.SockFprog{Len: uint16(len(cfg.Filter)), Filter: &cfg.Filter[0]}
	// From here to the stop, only raw syscalls that the filter lets through: the tracer
	// does not hold the listener yet, so a notified syscall would wait forever.
	//
	// SPEC_ALLOW: the filter is how the replay sees calls, not a sandbox against the
	// program, so the program keeps the speculation mitigations it has natively. Without
	// it, a kernel that mitigates Speculative Store Bypass "for seccomp" turns SSBD on
	// for the whole program, which slows every instruction it runs, served or not.
	flags := uintptr(unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW)
	listener, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&prog)))
	if errno == unix.EACCES {
		// Without CAP_SYS_ADMIN, a filter needs no_new_privs.
		if _, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
			return fmt.Errorf("sandbox: setting no_new_privs: %w", e)
		}
		listener, _, errno = unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&prog)))
	}
	if errno != 0 {
		return fmt.Errorf("sandbox: installing the seccomp filter: %w (needs Linux 5.0+ with CONFIG_SECCOMP_FILTER)", errno)
	}
	pid := unix.Getpid()
	if _, _, e := unix.RawSyscall(unix.SYS_TGKILL, uintptr(pid), uintptr(pid), uintptr(unix.SIGSTOP)); e != 0 {
		return fmt.Errorf("sandbox: stopping for the tracer: %w", e)
	}
	// The tracer now holds a copy of the listener and answers our calls.
	unix.Close(int(listener))
	err = syscall.Exec(cfg.Path, cfg.Args, cfg.Env)
	return fmt.Errorf("cannot run %s: %w", cfg.Path, err)
}
