package bpf

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/cilium/ebpf/btf"
)

// percpuSection is the kernel's per-CPU data, as its BTF describes it: one
// variable per per-CPU symbol, at its offset in the section.
const percpuSection = ".data..percpu"

// preemptCountFromRQ is the distance from this CPU's runqueue (the per-CPU
// runqueues) to this CPU's preempt count, which is __preempt_count on most
// kernels and pcpu_hot.preempt_count from Linux 6.2 to 6.14. Per-CPU
// copies keep their offsets within the per-CPU area, so the distance holds
// on every CPU. probes/sched.h reads the preempt count there to tell a
// wakeup from interrupt context.
func preemptCountFromRQ(kernel *btf.Spec) (int64, error) {
	var ds *btf.Datasec
	if err := kernel.TypeByName(percpuSection, &ds); err != nil {
		return 0, fmt.Errorf("%s in kernel BTF: %w", percpuSection, err)
	}
	var rq, pc int64
	var haveRQ, havePC bool
	for _, v := range ds.Vars {
		vr, ok := v.Type.(*btf.Var)
		if !ok {
			continue
		}
		switch vr.Name {
		case "runqueues":
			rq, haveRQ = int64(v.Offset), true
		case "__preempt_count":
			pc, havePC = int64(v.Offset), true
		case "pcpu_hot":
			if havePC {
				continue
			}
			if off, ok := memberOffset(vr.Type, "preempt_count"); ok {
				pc, havePC = int64(v.Offset)+int64(off), true
			}
		}
	}
	switch {
	case !haveRQ:
		return 0, errors.New("no per-CPU runqueues in kernel BTF")
	case !havePC:
		return 0, errors.New("no per-CPU preempt count (__preempt_count or pcpu_hot) in kernel BTF")
	case pc == rq:
		return 0, errors.New("per-CPU runqueues and preempt count at one offset in kernel BTF")
	}
	return pc - rq, nil
}

// memberOffset finds a member by name in a struct or union, looking into
// anonymous members, and returns its byte offset.
func memberOffset(t btf.Type, name string) (uint32, bool) {
	var members []btf.Member
	switch c := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		members = c.Members
	case *btf.Union:
		members = c.Members
	default:
		return 0, false
	}
	for _, m := range members {
		if m.Name == name {
			return m.Offset.Bytes(), true
		}
		if m.Name == "" {
			if off, ok := memberOffset(m.Type, name); ok {
				return m.Offset.Bytes() + off, true
			}
		}
	}
	return 0, false
}

// setIRQContext gives the probes the preempt count's place; without it,
// wakeups from interrupt context are credited to the interrupted task.
func setIRQContext(specs *bpfSpecs, kernel *btf.Spec, log *slog.Logger) error {
	delta, err := preemptCountFromRQ(kernel)
	if err != nil {
		log.Warn("wakeups from interrupt context cannot be told apart: they are credited to the interrupted task", "reason", err)
		return nil
	}
	if err := specs.PreemptCountFromRq.Set(delta); err != nil {
		return fmt.Errorf("setting preempt_count_from_rq: %w", err)
	}
	return nil
}
