package event

// How a kernel event was joined to its span (Event.Join), strongest first. A span names
// its thread in the runtime's terms, or not at all; each value says what tied the event's
// OS thread to it, so a reader can weigh the join (JoinConfidence).
const (
	// JoinTID: the span's thread.id is the event's OS thread (an SDK that reports the
	// OS thread, as the Go demo does).
	JoinTID = "tid"
	// JoinThreadName: the span's thread.name is the name the kernel knows the event's
	// thread by, and no other thread of the process bears it (a JVM names its threads;
	// its thread.id is its own number, not the OS's).
	JoinThreadName = "thread_name"
	// JoinOnCPU: the span names no usable thread; the event's thread was on a CPU when
	// the span started or ended, and not known off-CPU at either (sched_switch).
	JoinOnCPU = "on_cpu"
	// JoinPID: joined on the process (the span's process.pid) and time alone.
	JoinPID = "pid"
	// JoinPeerPID: as JoinPID, the process found from the OTLP connection the span came
	// on, the span carrying no process.pid.
	JoinPeerPID = "peer_pid"
)

// JoinConfidence is how sure a join is, 0..1: 0 for an unjoined event.
func JoinConfidence(join string) float64 {
	switch join {
	case JoinTID:
		return 1
	case JoinThreadName:
		return 0.9
	case JoinOnCPU:
		return 0.7
	case JoinPID:
		return 0.5
	case JoinPeerPID:
		return 0.45
	}
	return 0
}
