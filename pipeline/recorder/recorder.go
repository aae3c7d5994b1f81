package recorder

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/kprobe/kprobe/bpf"
	"github.com/kprobe/kprobe/pipeline/event"
)

// Sink receives converted batches. It must not keep the slice after returning.
type Sink interface {
	Write(ctx context.Context, events []event.Event) error
}

// Options configure a Recorder.
type Options struct {
	Logger *slog.Logger
	Node   string // defaults to the host name
	BPF    bpf.Options
	// Launcher names a process that runs as a launcher (comm LauncherComm) until it execs
	// the recorded command: its events before the exec are the launcher's, not the
	// command's, and are skipped (and counted).
	LauncherPID  uint32
	LauncherComm string
	// Flight, when set, also runs the flight recorder (every syscall replay needs, with
	// the bytes read) on the processes it selects; its events are TypeSyscall.
	Flight *bpf.FlightOptions
}

// Recorder records kernel events and converts them for the pipeline.
type Recorder struct {
	log        *slog.Logger
	node       string
	probes     *bpf.Probes
	flight     *bpf.Flight
	counts     [event.NumTypes]atomic.Uint64
	sinkErrors atomic.Uint64

	launcherPID  uint32
	launcherComm string
	execSeen     bool
	launcher     atomic.Uint64
}

// Open loads and attaches the probes.
func Open(ctx context.Context, opts Options) (*Recorder, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("node name: %w", err)
		}
		opts.Node = h
	}
	opts.BPF.Logger = opts.Logger
	p, err := bpf.Open(ctx, opts.BPF)
	if err != nil {
		return nil, err
	}
	r := &Recorder{log: opts.Logger.With("component", "recorder"), node: opts.Node, probes: p,
		launcherPID: opts.LauncherPID, launcherComm: opts.LauncherComm}
	if opts.Flight != nil {
		fo := *opts.Flight
		fo.Logger = opts.Logger
		if r.flight, err = bpf.OpenFlight(ctx, fo); err != nil {
			p.Close()
			return nil, err
		}
	}
	return r, nil
}

// Node is the node name stamped on every event.
func (r *Recorder) Node() string { return r.node }

// AddPID adds a process to the in-kernel filter (and to the flight recorder's).
func (r *Recorder) AddPID(pid uint32) error {
	if err := r.probes.AddPID(pid); err != nil {
		return err
	}
	if r.flight != nil {
		return r.flight.AddPID(pid)
	}
	return nil
}

// Run records until ctx ends, handing each converted batch to sink. A sink error is
// counted and logged once per kind, never fatal: recording goes on.
func (r *Recorder) Run(ctx context.Context, sink Sink) error {
	errc := make(chan error, 2)
	go func() { errc <- r.probes.Run(ctx) }()
	var flight <-chan []bpf.FlightCall
	if r.flight != nil {
		go func() { errc <- r.flight.Run(ctx) }()
		flight = r.flight.Batches()
	}
	clock := r.probes.Clock()
	probes := r.probes.Batches()
	var buf []event.Event
	write := func() {
		if err := sink.Write(ctx, buf); err != nil {
			if r.sinkErrors.Add(1) == 1 {
				r.log.Error("writing events", "err", err)
			}
		}
	}
	// One loop for both sources: a sink is written from one goroutine.
	for probes != nil || flight != nil {
		select {
		case batch, ok := <-probes:
			if !ok {
				probes = nil
				continue
			}
			buf = convertAll(buf, batch, r.fromLauncher, func(in *bpf.Event, out *event.Event) {
				Convert(r.node, clock, in, out)
				r.counts[out.Type].Add(1)
			})
			write()
			r.probes.Release(batch)
		case calls, ok := <-flight:
			if !ok {
				flight = nil
				continue
			}
			buf = convertAll(buf, calls, r.launcherCall, func(in *bpf.FlightCall, out *event.Event) {
				ConvertFlight(r.node, clock, in, out)
				r.counts[event.TypeSyscall].Add(1)
			})
			write()
		}
	}
	err := <-errc
	if r.flight != nil {
		err = errors.Join(err, <-errc)
	}
	return err
}

// convertAll fills buf (reused) with the samples of in that skip keeps, converted.
func convertAll[T any](buf []event.Event, in []T, skip func(*T) bool, convert func(*T, *event.Event)) []event.Event {
	buf = buf[:0]
	for i := range in {
		if skip(&in[i]) {
			continue
		}
		buf = append(buf, event.Event{})
		convert(&in[i], &buf[len(buf)-1])
	}
	return buf
}

// launcherCall reports a flight-recorder call of the launcher before it exec'd the
// command (its comm is still the launcher's).
func (r *Recorder) launcherCall(c *bpf.FlightCall) bool {
	if r.launcherPID == 0 || c.PID != r.launcherPID || c.Comm != r.launcherComm {
		return false
	}
	r.launcher.Add(1)
	return true
}

// fromLauncher reports whether a sample is the launcher's, before it exec'd the command.
// Samples are in reservation order, so the first one of that pid under another comm marks
// the exec.
func (r *Recorder) fromLauncher(e *bpf.Event) bool {
	if r.launcherPID == 0 || r.execSeen || e.PID != r.launcherPID {
		return false
	}
	if e.Comm != r.launcherComm {
		r.execSeen = true
		return false
	}
	r.launcher.Add(1)
	return true
}

// Close detaches the probes (and the flight recorder).
func (r *Recorder) Close() error {
	err := r.probes.Close()
	if r.flight != nil {
		err = errors.Join(err, r.flight.Close())
	}
	return err
}

// Summary is what a recording saw and lost.
type Summary struct {
	Events       map[event.Type]uint64
	KernelLost   uint64
	QueueDropped uint64
	SinkErrors   uint64
	Launcher     uint64 // events of the launcher before it exec'd the command, skipped
	Restarted    uint64 // interrupted read/write attempts the kernel restarted, not recorded
	Attachments  []bpf.Attachment
	Flight       *bpf.FlightStats // with the flight recorder
}

// Summary reports counts so far.
func (r *Recorder) Summary() Summary {
	st := r.probes.Stats()
	s := Summary{
		Events:       map[event.Type]uint64{},
		KernelLost:   st.KernelLost,
		QueueDropped: st.QueueDropped,
		SinkErrors:   r.sinkErrors.Load(),
		Launcher:     r.launcher.Load(),
		Restarted:    st.Restarted,
		Attachments:  r.probes.Attachments(),
	}
	for _, t := range event.Types() {
		s.Events[t] = r.counts[t].Load()
	}
	if r.flight != nil {
		fs := r.flight.Stats()
		s.Flight = &fs
	}
	return s
}

// Convert maps one probe sample to an event.
func Convert(node string, clock *bpf.Clock, in *bpf.Event, out *event.Event) {
	t := typeOf(in.Type)
	*out = event.Event{
		ID:       event.NewID(node, in.KtimeNs, in.TID, in.CPU, t),
		TsNs:     clock.WallNs(in.KtimeNs),
		KtimeNs:  in.KtimeNs,
		Node:     node,
		PID:      in.PID,
		TID:      in.TID,
		CPU:      in.CPU,
		Comm:     in.Comm,
		CgroupID: in.CgroupID,
		Type:     t,
		DurNs:    in.DurNs,
	}
	switch t {
	case event.TypeRead, event.TypeWrite:
		out.Syscall, out.FD, out.Dev, out.Ino = in.Syscall, in.FD, in.Dev, in.Ino
		setResult(out, in.Ret, in.Errno)
		out.Payload = in.Payload
	case event.TypeTCPSend, event.TypeTCPRecv:
		out.SAddr, out.DAddr, out.SPort, out.DPort = in.SAddr, in.DAddr, in.SPort, in.DPort
		setResult(out, in.Ret, in.Errno)
		out.Payload = in.Payload
	case event.TypeSchedSwitch:
		out.Preempted, out.RunqDelayNs = in.Preempted, in.RunqDelayNs
		out.NextPID, out.NextTID, out.NextComm = in.NextPID, in.NextTID, in.NextComm
		out.WakerPID, out.WakerTID = in.WakerPID, in.WakerTID
	case event.TypePageFault:
		out.Addr, out.IP, out.ErrorCode, out.KernelFault = in.Addr, in.IP, in.ErrorCode, in.KernelFault
	}
}

func setResult(out *event.Event, ret int64, errno int32) {
	switch {
	case errno != 0:
		out.Errno = errno
	case ret < 0:
		out.Errno = int32(-ret)
	default:
		out.Bytes = ret
	}
}

func typeOf(t bpf.EventType) event.Type {
	switch t {
	case bpf.EventRead:
		return event.TypeRead
	case bpf.EventWrite:
		return event.TypeWrite
	case bpf.EventTCPSend:
		return event.TypeTCPSend
	case bpf.EventTCPRecv:
		return event.TypeTCPRecv
	case bpf.EventSchedSwitch:
		return event.TypeSchedSwitch
	case bpf.EventPageFault:
		return event.TypePageFault
	}
	return event.TypeUnknown
}

// ConvertFlight maps one flight-recorder call to a TypeSyscall event.
func ConvertFlight(node string, clock *bpf.Clock, in *bpf.FlightCall, out *event.Event) {
	*out = event.Event{
		ID:       event.NewID(node, in.KtimeNs, in.TID, in.CPU, event.TypeSyscall),
		TsNs:     clock.WallNs(in.KtimeNs),
		KtimeNs:  in.KtimeNs,
		Node:     node,
		PID:      in.PID,
		TID:      in.TID,
		CPU:      in.CPU,
		Comm:     in.Comm,
		CgroupID: in.CgroupID,
		Type:     event.TypeSyscall,
		DurNs:    in.DurNs,
		Syscall:  in.Syscall,
		FD:       -1,
		Args:     make([]int64, len(in.Args)),
		Path:     in.Path,
		Payload:  in.Payload,

		Truncated: in.Truncated,
	}
	for i, a := range in.Args {
		out.Args[i] = int64(a)
	}
	if fdArg(out.Syscall) {
		out.FD = int32(in.Args[0])
	}
	setResult(out, in.Ret, 0)
	if out.Syscall == "connect" || out.Syscall == "accept" || out.Syscall == "accept4" || out.Syscall == "getpeername" {
		if ap, ok := sockaddr(in.Payload); ok {
			out.DAddr, out.DPort = ap.Addr(), ap.Port()
		}
	}
}

// sockaddr decodes an AF_INET or AF_INET6 struct sockaddr.
func sockaddr(b []byte) (netip.AddrPort, bool) {
	if len(b) < 2 {
		return netip.AddrPort{}, false
	}
	switch binary.LittleEndian.Uint16(b) {
	case unix.AF_INET:
		if len(b) >= 8 {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:])), true
		}
	case unix.AF_INET6:
		if len(b) >= 24 {
			return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), binary.BigEndian.Uint16(b[2:])), true
		}
	}
	return netip.AddrPort{}, false
}

// fdArg reports syscalls whose first argument is an fd.
func fdArg(name string) bool {
	switch name {
	case "open", "creat", "socket", "poll", "ppoll", "select", "pselect6", "getrandom", "nanosleep", "clock_nanosleep":
		return false
	}
	return true
}
