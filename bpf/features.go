package bpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// Sentinel errors for expected kernel and privilege states. Open wraps them
// in one-line messages that name the fix.
var (
	ErrNotPermitted = errors.New("operation not permitted")
	ErrNoBTF        = errors.New("kernel has no BTF")
	ErrNoRingBuf    = errors.New("kernel has no BPF ring buffer")
	ErrNoTracefs    = errors.New("tracefs not available")
)

const (
	btfPath     = "/sys/kernel/btf/vmlinux"
	tracefsPath = "/sys/kernel/tracing"
	kprobePMU   = "/sys/bus/event_source/devices/kprobe"
)

// Features is what the kernel allows, as probed by CheckFeatures.
type Features struct {
	BTF            bool
	RingBuf        bool
	Tracefs        string // mount point in use ("" if none)
	MountedTracefs bool   // CheckFeatures mounted it
	Kprobes        bool
	Fentry         bool // fentry on tcp_sendmsg loads
	FentryErr      error
}

// CheckFeatures verifies what the recorder needs (BTF, ring buffer,
// tracefs — mounting it when it is missing) and probes the optional attach
// methods. The returned error is one line and names the fix.
func CheckFeatures() (Features, error) {
	var f Features
	if _, err := os.Stat(btfPath); err != nil {
		return f, fmt.Errorf("%w (%s missing): use a kernel built with CONFIG_DEBUG_INFO_BTF=y", ErrNoBTF, btfPath)
	}
	f.BTF = true

	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		if errors.Is(err, unix.EPERM) {
			return f, privilegeError("probing BPF ring buffer", err)
		}
		return f, fmt.Errorf("%w: %v: use Linux 5.8 or later", ErrNoRingBuf, err)
	}
	f.RingBuf = true

	mp, mounted, err := ensureTracefs()
	if err != nil {
		return f, err
	}
	f.Tracefs, f.MountedTracefs = mp, mounted

	_, err = os.Stat(kprobePMU)
	f.Kprobes = err == nil
	f.FentryErr = probeFentry("tcp_sendmsg")
	f.Fentry = f.FentryErr == nil
	return f, nil
}

// ensureTracefs returns where tracefs is mounted, mounting it at
// /sys/kernel/tracing when it is not (tracepoint attach needs the event ids).
func ensureTracefs() (string, bool, error) {
	for _, p := range []string{tracefsPath, "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(p + "/events"); err == nil {
			return p, false, nil
		}
	}
	if err := unix.Mount("nodev", tracefsPath, "tracefs", 0, ""); err != nil {
		if errors.Is(err, unix.EPERM) {
			return "", false, fmt.Errorf("%w: mounting tracefs at %s: %v: run as root or mount it (mount -t tracefs nodev %s)", ErrNoTracefs, tracefsPath, err, tracefsPath)
		}
		return "", false, fmt.Errorf("%w: mounting tracefs at %s: %v: use a kernel with CONFIG_TRACING and mount it (mount -t tracefs nodev %s)", ErrNoTracefs, tracefsPath, err, tracefsPath)
	}
	return tracefsPath, true, nil
}

// probeFentry loads a trivial fentry program on fn. nil means fentry/fexit
// programs on fn will load; typical failures are EPERM (lockdown or a
// kernel that refuses trampolines) and ENOTSUPP (no trampoline support).
func probeFentry(fn string) error {
	prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
		Name:       "probe_fentry",
		Type:       ebpf.Tracing,
		AttachType: ebpf.AttachTraceFEntry,
		AttachTo:   fn,
		License:    "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	}, ebpf.ProgramOptions{LogDisabled: true})
	if err != nil {
		return fmt.Errorf("fentry/%s: %w", fn, err)
	}
	return prog.Close()
}

// probeRawSyscalls loads a trivial BTF raw tracepoint program on sys_enter
// and on sys_exit. nil means the tp_btf read/write programs will load.
func probeRawSyscalls() error {
	for _, tp := range []string{"sys_enter", "sys_exit"} {
		prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
			Name:       "probe_raw_tp",
			Type:       ebpf.Tracing,
			AttachType: ebpf.AttachTraceRawTp,
			AttachTo:   tp,
			License:    "GPL",
			Instructions: asm.Instructions{
				asm.Mov.Imm(asm.R0, 0),
				asm.Return(),
			},
		}, ebpf.ProgramOptions{LogDisabled: true})
		if err != nil {
			return fmt.Errorf("tp_btf/%s: %w", tp, err)
		}
		prog.Close()
	}
	return nil
}

// privilegeError turns EPERM into a one-line error naming the fix.
func privilegeError(what string, err error) error {
	if os.Geteuid() == 0 {
		// Root and still refused: capabilities are not the problem.
		return fmt.Errorf("%s: %w even as root: kernel lockdown or a program type this kernel refuses (%w)", what, ErrNotPermitted, err)
	}
	return fmt.Errorf("%s: %w: run as root or grant CAP_BPF+CAP_PERFMON (%w)", what, ErrNotPermitted, err)
}
