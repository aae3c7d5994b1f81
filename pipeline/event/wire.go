package event

import (
	"errors"
	"fmt"
	"net/netip"

	"google.golang.org/protobuf/proto"

	"github.com/kprobe/kprobe/pipeline/event/eventpb"
)

// WireVersion is the schema version written into every batch.
const WireVersion = 1

// ErrBadBatch wraps every reason a batch cannot be decoded; callers dead-letter such input.
var ErrBadBatch = errors.New("malformed event batch")

// MarshalBatch encodes events as one protobuf Batch.
func MarshalBatch(events []Event) ([]byte, error) {
	b := &eventpb.Batch{Version: WireVersion, Events: make([]*eventpb.Event, len(events))}
	pbs := make([]eventpb.Event, len(events))
	for i := range events {
		toPB(&events[i], &pbs[i])
		b.Events[i] = &pbs[i]
	}
	out, err := proto.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encoding event batch: %w", err)
	}
	return out, nil
}

// UnmarshalBatch decodes a Batch written by MarshalBatch. Anything malformed — bad
// protobuf, an unknown version, an unknown type, a bad address — returns an error wrapping
// ErrBadBatch that names the problem; it never panics.
func UnmarshalBatch(data []byte) ([]Event, error) {
	var b eventpb.Batch
	if err := proto.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBatch, err)
	}
	if b.Version != WireVersion {
		return nil, fmt.Errorf("%w: schema version %d, this build reads version %d", ErrBadBatch, b.Version, WireVersion)
	}
	out := make([]Event, len(b.Events))
	for i, p := range b.Events {
		if err := fromPB(p, &out[i]); err != nil {
			return nil, fmt.Errorf("%w: event %d: %v", ErrBadBatch, i, err)
		}
	}
	return out, nil
}

func toPB(e *Event, p *eventpb.Event) {
	p.Id = e.ID
	p.TsNs = e.TsNs
	p.KtimeNs = e.KtimeNs
	p.Node = e.Node
	p.Pid = e.PID
	p.Tid = e.TID
	p.Cpu = e.CPU
	p.Comm = e.Comm
	p.CgroupId = e.CgroupID
	p.Type = uint32(e.Type)
	p.DurNs = e.DurNs
	p.Syscall = e.Syscall
	p.Fd = e.FD
	p.Bytes = e.Bytes
	p.Errno = e.Errno
	p.Dev = e.Dev
	p.Ino = e.Ino
	if e.SAddr.IsValid() {
		p.Saddr = e.SAddr.AsSlice()
	}
	if e.DAddr.IsValid() {
		p.Daddr = e.DAddr.AsSlice()
	}
	p.Sport = uint32(e.SPort)
	p.Dport = uint32(e.DPort)
	p.Preempted = e.Preempted
	p.NextPid = e.NextPID
	p.NextTid = e.NextTID
	p.NextComm = e.NextComm
	p.WakerPid = e.WakerPID
	p.WakerTid = e.WakerTID
	p.RunqDelayNs = e.RunqDelayNs
	p.Addr = e.Addr
	p.Ip = e.IP
	p.ErrorCode = e.ErrorCode
	p.KernelFault = e.KernelFault
	p.Payload = e.Payload
	p.Args = e.Args
	p.Path = e.Path
	p.Truncated = e.Truncated
	p.TraceId = e.TraceID
	p.SpanId = e.SpanID
	p.Service = e.Service
	p.SpanName = e.SpanName
	p.Join = e.Join
	p.Attrs = e.Attrs
}

func fromPB(p *eventpb.Event, e *Event) error {
	if p == nil {
		return errors.New("empty event")
	}
	if p.Type == 0 || p.Type >= uint32(typeEnd) {
		return fmt.Errorf("unknown event type %d", p.Type)
	}
	saddr, err := addrFrom(p.Saddr)
	if err != nil {
		return fmt.Errorf("saddr: %w", err)
	}
	daddr, err := addrFrom(p.Daddr)
	if err != nil {
		return fmt.Errorf("daddr: %w", err)
	}
	if p.Sport > 0xffff || p.Dport > 0xffff {
		return fmt.Errorf("port out of range (%d, %d)", p.Sport, p.Dport)
	}
	*e = Event{
		ID: p.Id, TsNs: p.TsNs, KtimeNs: p.KtimeNs, Node: p.Node,
		PID: p.Pid, TID: p.Tid, CPU: p.Cpu, Comm: p.Comm, CgroupID: p.CgroupId,
		Type: Type(p.Type), DurNs: p.DurNs,
		Syscall: p.Syscall, FD: p.Fd, Bytes: p.Bytes, Errno: p.Errno, Dev: p.Dev, Ino: p.Ino,
		SAddr: saddr, DAddr: daddr, SPort: uint16(p.Sport), DPort: uint16(p.Dport),
		Preempted: p.Preempted, NextPID: p.NextPid, NextTID: p.NextTid, NextComm: p.NextComm,
		WakerPID: p.WakerPid, WakerTID: p.WakerTid, RunqDelayNs: p.RunqDelayNs,
		Addr: p.Addr, IP: p.Ip, ErrorCode: p.ErrorCode, KernelFault: p.KernelFault,
		Payload: p.Payload, Args: p.Args, Path: p.Path, Truncated: p.Truncated,
		TraceID: p.TraceId, SpanID: p.SpanId, Service: p.Service, SpanName: p.SpanName,
		Join: p.Join, Attrs: p.Attrs,
	}
	return nil
}

func addrFrom(b []byte) (netip.Addr, error) {
	switch len(b) {
	case 0:
		return netip.Addr{}, nil
	case 4, 16:
		a, _ := netip.AddrFromSlice(b)
		return a.Unmap(), nil
	}
	return netip.Addr{}, fmt.Errorf("address of %d bytes (want 4 or 16)", len(b))
}
