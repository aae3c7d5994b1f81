package bpf

import "net/netip"

// EventType says which hook produced an Event.
type EventType uint8

// Values match enum event_type in probes/event.h (TestEventTypesMatchProbes).
const (
	EventRead EventType = iota + 1
	EventWrite
	EventTCPSend
	EventTCPRecv
	EventSchedSwitch
	EventPageFault
	eventTypeEnd // one past the last type

	// numEventTypes sizes the arrays indexed by EventType (index 0 unused).
	numEventTypes = int(eventTypeEnd)
)

var eventTypeNames = [numEventTypes]string{
	"", "read", "write", "tcp_send", "tcp_recv", "sched_switch", "page_fault",
}

func (t EventType) String() string {
	if int(t) > 0 && int(t) < numEventTypes {
		return eventTypeNames[t]
	}
	return "unknown"
}

// EventTypes lists every type the recorder emits, in order.
func EventTypes() []EventType {
	types := make([]EventType, 0, numEventTypes-1)
	for t := EventRead; t < eventTypeEnd; t++ {
		types = append(types, t)
	}
	return types
}

// syscallNames is indexed by enum rw_syscall in probes/event.h.
var syscallNames = [...]string{"", "read", "pread64", "readv", "write", "pwrite64", "writev"}

// MaxPayload is the compile-time bound on captured payload bytes (MAX_PAYLOAD in probes/event.h).
const MaxPayload = 512

// Event is one decoded kernel event. Which fields are set depends on Type.
//
// KtimeNs is CLOCK_MONOTONIC (bpf_ktime_get_ns) at the start of the interval
// the event describes: syscall entry (read/write, fentry TCP), switch-out
// (sched_switch), the fault or the sock tracepoint otherwise. Use
// Clock.WallNs to convert it. DurNs is the interval's length: syscall
// latency, off-CPU time; 0 for page faults (measuring a fault's duration needs
// kprobes on handle_mm_fault, which these kernels lack) and for TCP events
// recorded through the sock_*_length tracepoint fallback.
type Event struct {
	KtimeNs  uint64
	DurNs    uint64
	PID, TID uint32
	CPU      uint32
	Comm     string
	CgroupID uint64
	Type     EventType

	// read/write family
	Syscall string // "read","pread64","readv","write","pwrite64","writev"
	FD      int32  // -1 when not a file descriptor event
	Ret     int64  // bytes, or -errno (also set for TCP)
	Errno   int32
	Dev     uint64 // st_dev encoding (as in stat(2)) of the file behind FD
	Ino     uint64

	// tcp: S = local, D = remote
	SAddr, DAddr netip.Addr
	SPort, DPort uint16

	// sched_switch: the event belongs to the thread that comes back on CPU.
	Preempted bool   // still runnable when switched out (vs blocked)
	NextPID   uint32 // task that took the CPU at switch-out
	NextTID   uint32
	NextComm  string
	WakerPID  uint32 // the task that woke it (0 if preempted, or woken by the kernel)
	WakerTID  uint32
	// KernelWakeup: woken from interrupt context (a timer, a device, the
	// network stack) rather than by a task; WakerPID and WakerTID are 0.
	KernelWakeup bool
	RunqDelayNs  uint64 // wakeup (or switch-out, if preempted) to running again

	// page faults
	Addr, IP, ErrorCode uint64
	KernelFault         bool

	// Payload holds the first bytes read (payload capture, read/pread64 only).
	Payload []byte
}

// Bytes is the byte count of a read/write/TCP event (0 on error).
func (e *Event) Bytes() int64 {
	if e.Ret < 0 {
		return 0
	}
	return e.Ret
}
