package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Attachment reports how one hook was attached.
type Attachment struct {
	Hook     string // e.g. "tcp_sendmsg", "read", "sched_switch"
	Method   string // e.g. "tp_btf/sock_send_length", "fentry/tcp_sendmsg+fexit/tcp_sendmsg"
	Fallback bool   // the preferred method was rejected by this kernel
	Reason   string // why the preferred method was not used ("" if it was)
}

// progLink is one program and where it attaches. Programs are named by
// their typed spec (bpfProgramSpecs), so a program renamed in the C source
// is a compile error here.
type progLink struct {
	spec *ebpf.ProgramSpec
	// tracepoint group/name for tracepoint programs; empty for BTF programs
	// (tp_btf, fentry, fexit), whose target is in the program spec.
	group, name string
}

// hookPlan is the set of programs that implement one hook.
type hookPlan struct {
	hook     string
	method   string
	fallback bool
	reason   string
	links    []progLink
}

// rwFallback is one syscall of the read/write family on the syscalls:*
// tracepoints.
type rwFallback struct {
	syscall     string
	enter, exit *ebpf.ProgramSpec
}

func rwFallbacks(s *bpfProgramSpecs) []rwFallback {
	return []rwFallback{
		{"read", s.EnterRead, s.ExitRead},
		{"pread64", s.EnterPread64, s.ExitPread64},
		{"readv", s.EnterReadv, s.ExitReadv},
		{"write", s.EnterWrite, s.ExitWrite},
		{"pwrite64", s.EnterPwrite64, s.ExitPwrite64},
		{"writev", s.EnterWritev, s.ExitWritev},
	}
}

// tcpHook describes the two implementations of a TCP hook.
type tcpHook struct {
	hook   string // kernel function
	fentry *ebpf.ProgramSpec
	// fexit programs by the function's parameter count: an fexit program
	// reads the return value in the slot after the last argument.
	fexit      map[int]*ebpf.ProgramSpec
	tracepoint string // sock tracepoint (tp_btf)
	tp         *ebpf.ProgramSpec
}

func tcpHooks(s *bpfProgramSpecs) []tcpHook {
	return []tcpHook{
		{
			hook: "tcp_sendmsg", fentry: s.FentryTcpSendmsg,
			fexit:      map[int]*ebpf.ProgramSpec{3: s.FexitTcpSendmsg},
			tracepoint: "sock_send_length", tp: s.TpSockSend,
		},
		{
			hook: "tcp_recvmsg", fentry: s.FentryTcpRecvmsg,
			fexit:      map[int]*ebpf.ProgramSpec{4: s.FexitTcpRecvmsg4, 5: s.FexitTcpRecvmsg5, 6: s.FexitTcpRecvmsg6},
			tracepoint: "sock_recv_length", tp: s.TpSockRecv,
		},
	}
}

// fexitFor picks the fexit program written for fn's prototype, as the
// kernel's BTF describes it: the return value's slot is the parameter count.
func fexitFor(fn string, proto *btf.FuncProto, variants map[int]*ebpf.ProgramSpec) (*ebpf.ProgramSpec, error) {
	if _, ok := btf.UnderlyingType(proto.Return).(*btf.Int); !ok {
		return nil, fmt.Errorf("%s returns %v in this kernel's BTF, not an int", fn, proto.Return)
	}
	if len(proto.Params) == 0 {
		return nil, fmt.Errorf("%s has no parameters in this kernel's BTF", fn)
	}
	if _, ok := btf.UnderlyingType(proto.Params[0].Type).(*btf.Pointer); !ok {
		return nil, fmt.Errorf("%s's first parameter %q is not a pointer in this kernel's BTF", fn, proto.Params[0].Name)
	}
	prog := variants[len(proto.Params)]
	if prog == nil {
		return nil, fmt.Errorf("%s has %d parameters in this kernel's BTF: no fexit program for that prototype", fn, len(proto.Params))
	}
	return prog, nil
}

// prober answers whether the preferred attach methods work here: fentry/fexit
// programs on a kernel function (and that function's prototype), and BTF raw
// tracepoints (tp_btf) on the sys_enter/sys_exit tracepoints.
type prober interface {
	Fentry(fn string) error
	FuncProto(fn string) (*btf.FuncProto, error)
	RawSyscalls() error
}

type kernelProber struct{}

func (kernelProber) Fentry(fn string) error { return probeFentry(fn) }
func (kernelProber) RawSyscalls() error     { return probeRawSyscalls() }

func (kernelProber) FuncProto(fn string) (*btf.FuncProto, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("loading kernel BTF: %w", err)
	}
	var f *btf.Func
	if err := spec.TypeByName(fn, &f); err != nil {
		return nil, fmt.Errorf("%s in kernel BTF: %w", fn, err)
	}
	proto, ok := f.Type.(*btf.FuncProto)
	if !ok {
		return nil, fmt.Errorf("%s in kernel BTF has no prototype", fn)
	}
	return proto, nil
}

// The raw pair caches its filter verdict per CPU; tp_btf/sched_process_exec
// forgets it when a process changes its name.
const rawSyscallsVia = "tp_btf/sys_enter+tp_btf/sys_exit"

// planHooks decides, per hook, which programs to load. The read/write
// family prefers one BTF raw tracepoint pair (no perf trace buffer, one
// program for all six syscalls) and falls back to the syscalls:*
// tracepoints; TCP prefers fentry/fexit (it measures the call) and falls
// back to the sock tracepoints.
//
// sched_switch comes first: the raw read/write programs keep per-CPU state
// that on_sched_switch hands over to task storage when a task leaves the
// CPU, so it must be attached before them.
func planHooks(p prober, s *bpfProgramSpecs) []hookPlan {
	plans := []hookPlan{
		{hook: "sched_switch", method: "tp_btf/sched_switch", links: []progLink{{spec: s.OnSchedSwitch}}},
		{hook: "sched_waking", method: "tp_btf/sched_waking", links: []progLink{{spec: s.OnSchedWaking}}},
		{hook: "sched_wakeup_new", method: "tp_btf/sched_wakeup_new", links: []progLink{{spec: s.OnSchedWakeupNew}}},
		// The pid filter follows the selected processes' children.
		{hook: "sched_process_fork", method: "tp_btf/sched_process_fork+sched_process_exit",
			links: []progLink{{spec: s.FilterOnFork}, {spec: s.FilterOnExit}}},
	}
	if err := p.RawSyscalls(); err == nil {
		for i, sc := range rwFallbacks(s) {
			plan := hookPlan{hook: sc.syscall, method: rawSyscallsVia}
			if i == 0 { // one program pair serves every syscall of the family
				plan.links = []progLink{{spec: s.SysEnterRw}, {spec: s.SysExitRw}, {spec: s.RwOnExec}}
			}
			plans = append(plans, plan)
		}
	} else {
		for _, sc := range rwFallbacks(s) {
			plans = append(plans, hookPlan{
				hook:     sc.syscall,
				method:   "tracepoint/syscalls/sys_enter_" + sc.syscall + "+sys_exit_" + sc.syscall,
				fallback: true,
				reason:   err.Error(),
				links: []progLink{
					{spec: sc.enter, group: "syscalls", name: "sys_enter_" + sc.syscall},
					{spec: sc.exit, group: "syscalls", name: "sys_exit_" + sc.syscall},
				},
			})
		}
	}
	for _, h := range tcpHooks(s) {
		plans = append(plans, planTCP(p, h))
	}
	plans = append(plans,
		hookPlan{hook: "page_fault_user", method: "tracepoint/exceptions/page_fault_user", links: []progLink{{spec: s.OnPageFaultUser, group: "exceptions", name: "page_fault_user"}}},
		hookPlan{hook: "page_fault_kernel", method: "tracepoint/exceptions/page_fault_kernel", links: []progLink{{spec: s.OnPageFaultKernel, group: "exceptions", name: "page_fault_kernel"}}},
	)
	return plans
}

func planTCP(p prober, h tcpHook) hookPlan {
	exit, err := fexitForKernel(p, h)
	if err == nil {
		return hookPlan{
			hook:   h.hook,
			method: "fentry/" + h.hook + "+fexit/" + h.hook,
			links:  []progLink{{spec: h.fentry}, {spec: exit}},
		}
	}
	return hookPlan{
		hook:     h.hook,
		method:   "tp_btf/" + h.tracepoint,
		fallback: true,
		reason:   err.Error(),
		links:    []progLink{{spec: h.tp}},
	}
}

func fexitForKernel(p prober, h tcpHook) (*ebpf.ProgramSpec, error) {
	if err := p.Fentry(h.hook); err != nil {
		return nil, err
	}
	proto, err := p.FuncProto(h.hook)
	if err != nil {
		return nil, err
	}
	return fexitFor(h.hook, proto, h.fexit)
}

// pruneSpec removes every program no plan uses, so that loading does not
// fail on programs (e.g. fentry, or an fexit written for another
// prototype) this kernel rejects.
func pruneSpec(spec *ebpf.CollectionSpec, plans []hookPlan) {
	used := map[*ebpf.ProgramSpec]bool{}
	for _, p := range plans {
		for _, l := range p.links {
			used[l.spec] = true
		}
	}
	for name, ps := range spec.Programs {
		if !used[ps] {
			delete(spec.Programs, name)
		}
	}
}

// attachAll attaches every planned program of coll, the collection loaded
// from the pruned spec. On error the links made so far are returned too, so
// the caller can close them.
func attachAll(coll *ebpf.Collection, plans []hookPlan) ([]link.Link, error) {
	var links []link.Link
	for _, p := range plans {
		for _, pl := range p.links {
			// The loaded program under its spec's name: the name comes
			// from the typed spec, not from a string written here.
			prog := coll.Programs[pl.spec.Name]
			if prog == nil {
				return links, fmt.Errorf("attaching %s: program %s not loaded", p.hook, pl.spec.Name)
			}
			var l link.Link
			var err error
			if pl.group != "" {
				l, err = link.Tracepoint(pl.group, pl.name, prog, nil)
			} else {
				l, err = link.AttachTracing(link.TracingOptions{Program: prog})
			}
			if err != nil {
				return links, attachError(p.hook, pl.spec.Name, err)
			}
			links = append(links, l)
		}
	}
	return links, nil
}

func attachError(hook, prog string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return privilegeError(fmt.Sprintf("attaching %s (%s)", hook, prog), err)
	}
	return fmt.Errorf("attaching %s (%s): %w", hook, prog, err)
}

func (p hookPlan) attachment() Attachment {
	return Attachment{Hook: p.hook, Method: p.method, Fallback: p.fallback, Reason: p.reason}
}
