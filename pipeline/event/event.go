package event

import (
	"fmt"
	"net/netip"
)

// Type says which kernel hook produced an event.
type Type uint8

// Event types. The numbering is part of the wire format: append, never renumber.
const (
	TypeUnknown Type = iota
	TypeRead
	TypeWrite
	TypeTCPSend
	TypeTCPRecv
	TypeSchedSwitch
	TypePageFault
	TypeSyscall
	typeEnd
)

// NumTypes is the length of an array indexed by Type (TypeUnknown included).
const NumTypes = int(typeEnd)

var typeNames = [...]string{
	TypeUnknown:     "unknown",
	TypeRead:        "read",
	TypeWrite:       "write",
	TypeTCPSend:     "tcp_send",
	TypeTCPRecv:     "tcp_recv",
	TypeSchedSwitch: "sched_switch",
	TypePageFault:   "page_fault",
	TypeSyscall:     "syscall",
}

// Types lists every known type, in wire order, without TypeUnknown.
func Types() []Type {
	return []Type{TypeRead, TypeWrite, TypeTCPSend, TypeTCPRecv, TypeSchedSwitch, TypePageFault, TypeSyscall}
}

func (t Type) String() string {
	if t < typeEnd {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// ParseType is the inverse of Type.String.
func ParseType(s string) (Type, error) {
	for i, n := range typeNames {
		if n == s && Type(i) != TypeUnknown {
			return Type(i), nil
		}
	}
	return TypeUnknown, fmt.Errorf("unknown event type %q (want one of read, write, tcp_send, tcp_recv, sched_switch, page_fault, syscall)", s)
}

// Topic is the Kafka topic that carries events of this type.
func (t Type) Topic() string {
	switch t {
	case TypeRead, TypeWrite, TypeSyscall:
		return TopicSyscall
	case TypeTCPSend, TypeTCPRecv:
		return TopicTCP
	case TypeSchedSwitch:
		return TopicSched
	case TypePageFault:
		return TopicFault
	}
	return TopicDeadLetter
}

// Kafka topics, one per event family, as the architecture names them.
const (
	TopicSyscall    = "kernel.syscall"
	TopicTCP        = "kernel.tcp"
	TopicSched      = "kernel.sched"
	TopicFault      = "kernel.fault"
	TopicEnriched   = "kernel.enriched"
	TopicDeadLetter = "kernel.deadletter"
)

// KernelTopics are the topics the recorder publishes to.
var KernelTopics = []string{TopicSyscall, TopicTCP, TopicSched, TopicFault}

// Event is one kernel event. Fields that do not apply to the event's Type are zero.
type Event struct {
	ID       uint64 // stable: see NewID
	TsNs     int64  // wall clock, ns since the Unix epoch
	KtimeNs  uint64 // the kernel's monotonic clock at the event, the basis of ID
	Node     string
	PID      uint32
	TID      uint32
	CPU      uint32
	Comm     string
	CgroupID uint64
	Type     Type
	DurNs    uint64

	// read/write family.
	Syscall string // read, pread64, readv, write, pwrite64, writev
	FD      int32
	Bytes   int64 // bytes transferred; 0 when Errno is set
	Errno   int32
	Dev     uint64 // identity of the file behind FD
	Ino     uint64

	// tcp_send/tcp_recv: S is the local end, D the remote end.
	SAddr netip.Addr
	DAddr netip.Addr
	SPort uint16
	DPort uint16

	// sched_switch, emitted when a switched-out thread runs again; DurNs is its off-CPU time.
	Preempted   bool
	NextPID     uint32 // the task that took the CPU
	NextTID     uint32
	NextComm    string
	WakerPID    uint32 // the task that woke it; 0 when preempted, or woken by the kernel (a timer, a device: interrupt context)
	WakerTID    uint32
	RunqDelayNs uint64

	// page_fault.
	Addr        uint64
	IP          uint64
	ErrorCode   uint64
	KernelFault bool

	// Payload holds the first bytes read or received, for processes selected for replay.
	Payload []byte

	// syscall: one syscall of a process under the flight recorder, as replay needs it.
	// Syscall names it, FD is its fd argument (-1 when it has none), Bytes its return value
	// when it succeeded (a byte count, a new fd, a ready count), Errno its error, DurNs its
	// duration, KtimeNs its entry. Args are its raw arguments, Path the path it opened,
	// Payload what it brought into the program (the data read, the ready set, the random
	// bytes, the address) or the first bytes it wrote, and Truncated how many more bytes the
	// call moved than the recorder kept.
	Args      []int64
	Path      string
	Truncated uint64

	// Enrichment, set by the correlator.
	TraceID  string
	SpanID   string
	Service  string
	SpanName string
	Join     string            // how the span was joined (Join* in join.go), "" when unmatched
	Attrs    map[string]string // business keys from the span (settlement.id, payment.id, ...)
}

// Key is the Kafka message key: one process's events stay in one partition, in order.
func (e *Event) Key() []byte {
	var b [36]byte
	n := copy(b[:], e.Node)
	if n > 32 {
		n = 32
	}
	k := b[:n]
	return append(k, byte(e.PID>>24), byte(e.PID>>16), byte(e.PID>>8), byte(e.PID))
}
