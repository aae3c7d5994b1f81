package correlate

import (
	"fmt"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
)

// Explain says, one line per reason with a non-zero count, why events or spans did not
// join, and what to do about it: the agent prints these under its summary. lateness is
// the --lateness in force.
func (s Stats) Explain(lateness time.Duration) []string {
	var out []string
	add := func(n uint64, format string, args ...any) {
		if n > 0 {
			out = append(out, fmt.Sprintf("%d %s", n, fmt.Sprintf(format, args...)))
		}
	}
	add(s.UnmatchedNoHost, "events unjoined, no host: no span came from their node (spans without host.name must be sent to that node's own receiver)")
	add(s.UnmatchedNoPID, "events unjoined, no pid: no span names their process (not traced, or its spans lack process.pid and did not come straight from it)")
	add(s.UnmatchedThread, "events unjoined, unknown thread: their process's spans ran on other threads then (work outside any span: runtime, GC, idle workers)")
	add(s.UnmatchedNoSpan, "events unjoined, no span in time: no span of their process covered them (between requests, or spans came later than --lateness %v)", lateness)
	add(s.SpansLate, "spans came after the events they cover had been written (no span in time): raise --lateness above the exporters' batch delay (OpenTelemetry SDKs: 5s)")
	add(s.SpansNoHost, "spans cannot join, no host: no host.name and not sent to this node's receiver")
	add(s.SpansNoPID, "spans cannot join, no pid: no process.pid and the sending process could not be found from the connection")
	add(s.SpansByProcess, "spans name a thread none of their process's recorded threads matched (thread.id is the runtime's, thread.name unknown): joined by process, lower confidence")
	add(s.SpansNoEvents, "spans joined no event: their process was not recorded (select it with --pid or --comm), or did nothing the recorder hooks while they ran")
	return out
}

// WhyNoEvents says in one line why a span (a settlement's) has no kernel events joined,
// from what the recorder had: during holds the events of the span's host and process
// within its time, recorded whether that process was recorded at all. It never blames
// the recorder for events it had.
func WhyNoEvents(host string, pid uint32, during []event.Event, recorded bool) string {
	switch {
	case host == "":
		return "no kernel events joined: no host (its spans carry no host.name and were not sent to this node's receiver)"
	case pid == 0:
		return "no kernel events joined: no pid (its spans carry no process.pid and were not sent straight from the process to this node's receiver)"
	case len(during) > 0:
		other := 0
		for i := range during {
			if during[i].Join != "" {
				other++
			}
		}
		if other == len(during) {
			return fmt.Sprintf("no kernel events joined, though pid %d had %d while it ran: all joined other spans of the process (other threads' requests)", pid, len(during))
		}
		return fmt.Sprintf("no kernel events joined, though pid %d had %d while it ran (%d unjoined): unknown thread, or its spans came later than --lateness (see the agent's 'why:' lines)", pid, len(during), len(during)-other)
	case recorded:
		return fmt.Sprintf("no kernel events joined: pid %d was recorded but did nothing the recorder hooks while it ran", pid)
	}
	return fmt.Sprintf("no kernel events joined: pid %d on %s was not recorded (select it with --pid %d or --comm NAME)", pid, host, pid)
}
