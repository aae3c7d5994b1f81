package sandbox

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// Action is what the seccomp filter does with one syscall of the target program.
type Action uint8

const (
	// Allow runs the syscall natively, without a stop. The filter reads only the syscall
	// number and the architecture, so the kernel caches Allow verdicts in its per-filter
	// bitmap: an allowed syscall never runs the filter at all.
	Allow Action = iota
	// Notify stops the calling thread and hands the call to the supervisor
	// (SECCOMP_RET_USER_NOTIF): one wake-up each way, the cheapest stop there is.
	Notify
	// Trace stops the calling thread in the tracer (SECCOMP_RET_TRACE): slower, but the
	// tracer can change the call's registers before it runs (timeout edits).
	Trace
)

// seccomp_data offsets (linux/seccomp.h).
const (
	offNr   = 0
	offArch = 4

	auditArchX86_64 = 0xc000003e
	x32SyscallBit   = 0x40000000
)

// buildFilter returns a classic BPF program that returns SECCOMP_RET_USER_NOTIF for the
// syscalls in notify, SECCOMP_RET_TRACE for those in trace and SECCOMP_RET_ALLOW for the
// rest. Numbers are compared in a balanced tree (log2 of the set, not its length), and
// only nr and arch are loaded so that every allowed syscall is constant-allow for the
// kernel's bitmap cache.
func buildFilter(notify, trace []int) ([]unix.SockFilter, error) {
	type entry struct {
		nr  int
		act Action
	}
	seen := map[int]Action{}
	var entries []entry
	for _, set := range []struct {
		nrs []int
		act Action
	}{{notify, Notify}, {trace, Trace}} {
		for _, nr := range set.nrs {
			if nr < 0 || nr >= x32SyscallBit {
				return nil, fmt.Errorf("syscall number %d out of range", nr)
			}
			if prev, ok := seen[nr]; ok {
				if prev != set.act {
					return nil, fmt.Errorf("syscall %d is both notified and traced", nr)
				}
				continue
			}
			seen[nr] = set.act
			entries = append(entries, entry{nr, set.act})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int { return a.nr - b.nr })

	// The program is emitted back to front so that every jump target is known: the
	// three return instructions come last, and each comparison jumps forward to them.
	var prog []unix.SockFilter // reversed
	emit := func(f unix.SockFilter) int { prog = append(prog, f); return len(prog) - 1 }
	retAllow := emit(stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_ALLOW))
	retNotify := emit(stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_USER_NOTIF))
	retTrace := emit(stmt(unix.BPF_RET|unix.BPF_K, unix.SECCOMP_RET_TRACE))
	retOf := func(a Action) int {
		switch a {
		case Notify:
			return retNotify
		case Trace:
			return retTrace
		}
		return retAllow
	}
	// jumpTo is the forward offset from the instruction about to be emitted (at reversed
	// index len(prog)) to the instruction at reversed index target.
	jumpTo := func(target int) (uint8, error) {
		off := len(prog) - 1 - target
		if off < 0 || off > 255 {
			return 0, fmt.Errorf("filter too large: jump of %d", off)
		}
		return uint8(off), nil
	}
	// tree emits the comparisons for entries[lo:hi] and returns the reversed index of
	// its first instruction. The accumulator holds nr.
	var tree func(lo, hi int) (int, error)
	tree = func(lo, hi int) (int, error) {
		if hi-lo <= 3 {
			// A short run of equality tests, falling through to Allow.
			next := retAllow
			for i := hi - 1; i >= lo; i-- {
				jt, err := jumpTo(retOf(entries[i].act))
				if err != nil {
					return 0, err
				}
				jf, err := jumpTo(next)
				if err != nil {
					return 0, err
				}
				next = emit(jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, uint32(entries[i].nr), jt, jf))
			}
			return next, nil
		}
		mid := (lo + hi) / 2
		right, err := tree(mid, hi)
		if err != nil {
			return 0, err
		}
		left, err := tree(lo, mid)
		if err != nil {
			return 0, err
		}
		// nr >= entries[mid].nr → right subtree, else left.
		jt, err := jumpTo(right)
		if err != nil {
			return 0, err
		}
		jf, err := jumpTo(left)
		if err != nil {
			return 0, err
		}
		return emit(jump(unix.BPF_JMP|unix.BPF_JGE|unix.BPF_K, uint32(entries[mid].nr), jt, jf)), nil
	}
	start, err := tree(0, len(entries))
	if err != nil {
		return nil, err
	}
	// Header: other architectures and the x32 ABI run natively (nothing is recorded for
	// them either).
	jt, err := jumpTo(retAllow)
	if err != nil {
		return nil, err
	}
	jf, err := jumpTo(start)
	if err != nil {
		return nil, err
	}
	emit(jump(unix.BPF_JMP|unix.BPF_JGE|unix.BPF_K, x32SyscallBit, jt, jf))
	emit(stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offNr))
	// arch != x86_64 → Allow.
	jf, err = jumpTo(retAllow)
	if err != nil {
		return nil, err
	}
	emit(jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, auditArchX86_64, 0, jf))
	emit(stmt(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, offArch))
	slices.Reverse(prog)
	return prog, nil
}

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }

func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}
