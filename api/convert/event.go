package convert

import (
	"fmt"
	"net/netip"

	kprobev1 "github.com/kprobe/kprobe/api/kprobe/v1"
	"github.com/kprobe/kprobe/pipeline/event"
)

// EventToPB is e as the API sends it. The result shares e's Payload and Attrs.
func EventToPB(e *event.Event) *kprobev1.Event {
	return &kprobev1.Event{
		Id: e.ID, TsNs: e.TsNs, KtimeNs: e.KtimeNs, Node: e.Node, Pid: e.PID, Tid: e.TID, Cpu: e.CPU,
		Comm: e.Comm, CgroupId: e.CgroupID, Type: e.Type.String(), DurationNs: e.DurNs,
		Syscall: e.Syscall, Fd: e.FD, Bytes: e.Bytes, Errno: e.Errno, Dev: e.Dev, Ino: e.Ino,
		Saddr: addrString(e.SAddr), Daddr: addrString(e.DAddr), Sport: uint32(e.SPort), Dport: uint32(e.DPort),
		Preempted: e.Preempted, NextPid: e.NextPID, NextTid: e.NextTID, NextComm: e.NextComm,
		WakerPid: e.WakerPID, WakerTid: e.WakerTID, RunqDelayNs: e.RunqDelayNs,
		Addr: e.Addr, Ip: e.IP, ErrorCode: e.ErrorCode, KernelFault: e.KernelFault,
		Payload: e.Payload, TraceId: e.TraceID, SpanId: e.SpanID, Service: e.Service,
		SpanName: e.SpanName, Join: e.Join, Attrs: e.Attrs,
		Args: e.Args, Path: e.Path, Truncated: e.Truncated,
	}
}

// EventsToPB converts a list.
func EventsToPB(evs []event.Event) []*kprobev1.Event {
	out := make([]*kprobev1.Event, len(evs))
	for i := range evs {
		out[i] = EventToPB(&evs[i])
	}
	return out
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// EventFromPB is the inverse of EventToPB. It checks what the model cannot hold (an unknown
// type, a malformed address, a port above 65535), since the message comes from outside.
func EventFromPB(p *kprobev1.Event) (event.Event, error) {
	e := event.Event{
		ID: p.GetId(), TsNs: p.GetTsNs(), KtimeNs: p.GetKtimeNs(), Node: p.GetNode(), PID: p.GetPid(),
		TID: p.GetTid(), CPU: p.GetCpu(), Comm: p.GetComm(), CgroupID: p.GetCgroupId(), DurNs: p.GetDurationNs(),
		Syscall: p.GetSyscall(), FD: p.GetFd(), Bytes: p.GetBytes(), Errno: p.GetErrno(), Dev: p.GetDev(), Ino: p.GetIno(),
		Preempted: p.GetPreempted(), NextPID: p.GetNextPid(), NextTID: p.GetNextTid(), NextComm: p.GetNextComm(),
		WakerPID: p.GetWakerPid(), WakerTID: p.GetWakerTid(), RunqDelayNs: p.GetRunqDelayNs(),
		Addr: p.GetAddr(), IP: p.GetIp(), ErrorCode: p.GetErrorCode(), KernelFault: p.GetKernelFault(),
		Payload: p.GetPayload(), TraceID: p.GetTraceId(), SpanID: p.GetSpanId(), Service: p.GetService(),
		SpanName: p.GetSpanName(), Join: p.GetJoin(),
		Args: p.GetArgs(), Path: p.GetPath(), Truncated: p.GetTruncated(),
	}
	if len(p.GetAttrs()) > 0 {
		e.Attrs = p.GetAttrs()
	}
	var err error
	if e.Type, err = event.ParseType(p.GetType()); err != nil {
		return event.Event{}, fmt.Errorf("event %d: %w", e.ID, err)
	}
	if e.SAddr, err = parseAddr(p.GetSaddr()); err != nil {
		return event.Event{}, fmt.Errorf("event %d: saddr: %w", e.ID, err)
	}
	if e.DAddr, err = parseAddr(p.GetDaddr()); err != nil {
		return event.Event{}, fmt.Errorf("event %d: daddr: %w", e.ID, err)
	}
	if p.GetSport() > 0xffff || p.GetDport() > 0xffff {
		return event.Event{}, fmt.Errorf("event %d: port %d/%d out of range", e.ID, p.GetSport(), p.GetDport())
	}
	e.SPort, e.DPort = uint16(p.GetSport()), uint16(p.GetDport())
	return e, nil
}

// EventsFromPB converts a list, appending to dst.
func EventsFromPB(dst []event.Event, ps []*kprobev1.Event) ([]event.Event, error) {
	for _, p := range ps {
		e, err := EventFromPB(p)
		if err != nil {
			return dst, err
		}
		dst = append(dst, e)
	}
	return dst, nil
}

func parseAddr(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	return netip.ParseAddr(s)
}

// TypesFromStrings parses event type names.
func TypesFromStrings(ss []string) ([]event.Type, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	out := make([]event.Type, len(ss))
	for i, s := range ss {
		t, err := event.ParseType(s)
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// TypesToStrings names event types.
func TypesToStrings(ts []event.Type) []string {
	if len(ts) == 0 {
		return nil
	}
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.String()
	}
	return out
}
