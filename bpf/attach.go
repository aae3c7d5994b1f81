package bpf

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
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

// progLink is one program and where it attaches.
type progLink struct {
	prog string // program name in kprobe.c
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

var rwSyscalls = []string{"read", "pread64", "readv", "write", "pwrite64", "writev"}

// tcpHook describes the two implementations of a TCP hook.
type tcpHook struct {
	hook       string // kernel function
	fentry     []string
	tracepoint string // sock tracepoint (tp_btf)
	tpProg     string
}

var tcpHooks = []tcpHook{
	{hook: "tcp_sendmsg", fentry: []string{"fentry_tcp_sendmsg", "fexit_tcp_sendmsg"}, tracepoint: "sock_send_length", tpProg: "tp_sock_send"},
	{hook: "tcp_recvmsg", fentry: []string{"fentry_tcp_recvmsg", "fexit_tcp_recvmsg"}, tracepoint: "sock_recv_length", tpProg: "tp_sock_recv"},
}

// prober answers whether the preferred attach methods work here: fentry/fexit
// programs on a kernel function, and BTF raw tracepoints (tp_btf) on the
// sys_enter/sys_exit tracepoints.
type prober interface {
	Fentry(fn string) error
	RawSyscalls() error
}

type kernelProber struct{}

func (kernelProber) Fentry(fn string) error { return probeFentry(fn) }
func (kernelProber) RawSyscalls() error     { return probeRawSyscalls() }

// Programs of the preferred read/write implementation: one BTF raw
// tracepoint pair on sys_enter/sys_exit for the whole family.
const (
	rawEnterProg   = "sys_enter_rw"
	rawExitProg    = "sys_exit_rw"
	rawSyscallsVia = "tp_btf/sys_enter+tp_btf/sys_exit"
)

// planHooks decides, per hook, which programs to load. The read/write
// family prefers one BTF raw tracepoint pair (no perf trace buffer, one
// program for all six syscalls) and falls back to the syscalls:*
// tracepoints; TCP prefers fentry/fexit (it measures the call) and falls
// back to the sock tracepoints.
//
// sched_switch comes first: the raw read/write programs keep per-CPU state
// that on_sched_switch hands over to task storage when a task leaves the
// CPU, so it must be attached before them.
func planHooks(p prober) []hookPlan {
	plans := []hookPlan{
		{hook: "sched_switch", method: "tp_btf/sched_switch", links: []progLink{{prog: "on_sched_switch"}}},
		{hook: "sched_wakeup", method: "tp_btf/sched_wakeup", links: []progLink{{prog: "on_sched_wakeup"}}},
		{hook: "sched_wakeup_new", method: "tp_btf/sched_wakeup_new", links: []progLink{{prog: "on_sched_wakeup_new"}}},
	}
	if err := p.RawSyscalls(); err == nil {
		for i, sc := range rwSyscalls {
			plan := hookPlan{hook: sc, method: rawSyscallsVia}
			if i == 0 { // one program pair serves every syscall of the family
				plan.links = []progLink{{prog: rawEnterProg}, {prog: rawExitProg}}
			}
			plans = append(plans, plan)
		}
	} else {
		for _, sc := range rwSyscalls {
			plans = append(plans, hookPlan{
				hook:     sc,
				method:   "tracepoint/syscalls/sys_enter_" + sc + "+sys_exit_" + sc,
				fallback: true,
				reason:   err.Error(),
				links: []progLink{
					{prog: "enter_" + sc, group: "syscalls", name: "sys_enter_" + sc},
					{prog: "exit_" + sc, group: "syscalls", name: "sys_exit_" + sc},
				},
			})
		}
	}
	for _, h := range tcpHooks {
		err := p.Fentry(h.hook)
		if err == nil {
			var methods []string
			var links []progLink
			for _, prog := range h.fentry {
				kind, _, _ := strings.Cut(prog, "_")
				methods = append(methods, kind+"/"+h.hook)
				links = append(links, progLink{prog: prog})
			}
			plans = append(plans, hookPlan{hook: h.hook, method: strings.Join(methods, "+"), links: links})
			continue
		}
		plans = append(plans, hookPlan{
			hook:     h.hook,
			method:   "tp_btf/" + h.tracepoint,
			fallback: true,
			reason:   err.Error(),
			links:    []progLink{{prog: h.tpProg}},
		})
	}
	plans = append(plans,
		hookPlan{hook: "page_fault_user", method: "tracepoint/exceptions/page_fault_user", links: []progLink{{prog: "on_page_fault_user", group: "exceptions", name: "page_fault_user"}}},
		hookPlan{hook: "page_fault_kernel", method: "tracepoint/exceptions/page_fault_kernel", links: []progLink{{prog: "on_page_fault_kernel", group: "exceptions", name: "page_fault_kernel"}}},
	)
	return plans
}

// pruneSpec removes every program no plan uses, so that loading does not
// fail on programs (e.g. fentry) this kernel rejects.
func pruneSpec(spec *ebpf.CollectionSpec, plans []hookPlan) {
	used := map[string]bool{}
	for _, p := range plans {
		for _, l := range p.links {
			used[l.prog] = true
		}
	}
	for name := range spec.Programs {
		if !used[name] {
			delete(spec.Programs, name)
		}
	}
}

// attachAll attaches every planned program. On error the links made so far
// are returned too, so the caller can close them.
func attachAll(coll *ebpf.Collection, plans []hookPlan) ([]link.Link, error) {
	var links []link.Link
	for _, p := range plans {
		for _, pl := range p.links {
			prog := coll.Programs[pl.prog]
			if prog == nil {
				return links, fmt.Errorf("attaching %s: program %s not loaded", p.hook, pl.prog)
			}
			var l link.Link
			var err error
			if pl.group != "" {
				l, err = link.Tracepoint(pl.group, pl.name, prog, nil)
			} else {
				l, err = link.AttachTracing(link.TracingOptions{Program: prog})
			}
			if err != nil {
				return links, attachError(p.hook, pl.prog, err)
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
