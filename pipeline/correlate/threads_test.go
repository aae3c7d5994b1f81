package correlate

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

const ms = int64(1e6)

// onThread is an event of the test process on thread tid named comm, at ts ms.
func onThread(ts int64, tid uint32, comm string) event.Event {
	return event.Event{TsNs: ts * ms, Node: host, PID: pid, TID: tid, Comm: comm, Type: event.TypeWrite}
}

// offCPU is the sched_switch event of a thread that left the CPU at out ms and came back
// at in ms.
func offCPU(out, in int64, tid uint32, comm string) event.Event {
	e := onThread(out, tid, comm)
	e.Type, e.DurNs = event.TypeSchedSwitch, uint64((in-out)*ms)
	return e
}

// runtimeSpan is a span as a runtime reports it: its own thread number and name (a
// JVM's), or none (Python's defaults), times in ms.
func runtimeSpan(id string, start, end int64, tid uint32, name string) span.Span {
	return span.Span{TraceID: "t1", SpanID: id, Name: id, Host: host, PID: pid, TID: tid, ThreadName: name,
		StartNs: start * ms, EndNs: end * ms}
}

// joinAll feeds spans, then events, flushes, and returns how each write event joined.
func joinAll(t *testing.T, spans []span.Span, events []event.Event) map[[2]int64]string {
	t.Helper()
	c := New(Options{Lateness: 10})
	c.AddSpans(spans)
	got := map[[2]int64]string{}
	emit := func(evs []event.Event) {
		for _, e := range evs {
			if e.Type == event.TypeWrite {
				got[[2]int64{e.TsNs / ms, int64(e.TID)}] = e.SpanName + "/" + e.Join
			}
		}
	}
	c.AddEvents(events, emit)
	c.Flush(emit)
	return got
}

// TestJoinRuntimeThreads: spans that name their thread in the runtime's terms, or not at
// all, get their own threads' events, and say how they were tied to them.
func TestJoinRuntimeThreads(t *testing.T) {
	tests := []struct {
		name   string
		spans  []span.Span
		events []event.Event
		want   map[[2]int64]string // (ms, tid) -> span/join
	}{
		{
			name: "JVM: thread.id is the JVM's number, thread.name the kernel's comm",
			spans: []span.Span{
				runtimeSpan("w1", 0, 100, 30, "settle-worker-1"),
				runtimeSpan("w2", 10, 110, 31, "settle-worker-2"),
			},
			events: []event.Event{
				onThread(50, 101, "settle-worker-1"), onThread(50, 102, "settle-worker-2"),
				onThread(50, 103, "C2 CompilerThre"), onThread(105, 101, "settle-worker-1"),
			},
			want: map[[2]int64]string{
				{50, 101}: "w1/thread_name", {50, 102}: "w2/thread_name",
				{50, 103}: "/", {105, 101}: "/",
			},
		},
		{
			name:   "long thread names are matched as the kernel cuts them",
			spans:  []span.Span{runtimeSpan("w", 0, 100, 40, "settlement-worker-main")},
			events: []event.Event{onThread(50, 101, "settlement-work"), onThread(50, 102, "other")},
			want:   map[[2]int64]string{{50, 101}: "w/thread_name", {50, 102}: "/"},
		},
		{
			name:   "a thread.id that is an OS thread of the process wins over its name",
			spans:  []span.Span{runtimeSpan("w", 0, 100, 101, "renamed")},
			events: []event.Event{onThread(50, 101, "worker"), onThread(50, 102, "renamed")},
			want:   map[[2]int64]string{{50, 101}: "w/tid", {50, 102}: "/"},
		},
		{
			name: "no thread named: the thread on a CPU at the span's start and end",
			spans: []span.Span{
				runtimeSpan("a", 100, 200, 0, ""),
				runtimeSpan("b", 150, 250, 0, ""),
			},
			events: []event.Event{
				// 301 runs a: on a CPU at 100 and 200, off at 150.
				offCPU(50, 99, 301, "python3"), offCPU(120, 199, 301, "python3"), offCPU(210, 300, 301, "python3"),
				// 302 runs b: off at 100 and at 200, on at 150 and 250.
				offCPU(0, 149, 302, "python3"), offCPU(160, 249, 302, "python3"), offCPU(260, 300, 302, "python3"),
				onThread(110, 301, "python3"), onThread(180, 301, "python3"), onThread(180, 302, "python3"),
				onThread(155, 302, "python3"),
				// 303 says nothing of when it ran: joined on the process alone.
				onThread(180, 303, "python3"),
			},
			want: map[[2]int64]string{
				{110, 301}: "a/on_cpu", {180, 301}: "a/on_cpu", {180, 302}: "b/on_cpu", {155, 302}: "b/on_cpu",
				{180, 303}: "b/pid",
			},
		},
		{
			name: "several threads share the name: on-CPU picks among them",
			spans: []span.Span{
				runtimeSpan("r1", 100, 200, 50, "http-nio-8080-exec-1"),
				runtimeSpan("r2", 150, 250, 51, "http-nio-8080-exec-2"),
			},
			events: []event.Event{
				offCPU(50, 99, 201, "http-nio-8080-e"), offCPU(120, 199, 201, "http-nio-8080-e"), offCPU(210, 300, 201, "http-nio-8080-e"),
				offCPU(0, 149, 202, "http-nio-8080-e"), offCPU(160, 249, 202, "http-nio-8080-e"), offCPU(260, 300, 202, "http-nio-8080-e"),
				onThread(180, 201, "http-nio-8080-e"), onThread(180, 202, "http-nio-8080-e"),
				onThread(180, 203, "GC Thread#0"),
			},
			want: map[[2]int64]string{{180, 201}: "r1/on_cpu", {180, 202}: "r2/on_cpu", {180, 203}: "/"},
		},
		{
			name: "the process found from the OTLP connection says so",
			spans: []span.Span{func() span.Span {
				s := runtimeSpan("p", 0, 100, 0, "")
				s.PIDFrom = span.FromPeer
				return s
			}()},
			events: []event.Event{onThread(50, 101, "python3")},
			want:   map[[2]int64]string{{50, 101}: "p/peer_pid"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, joinAll(t, tt.spans, tt.events)); diff != "" {
				t.Errorf("joins (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWhyNotJoined: every unjoined event and span is counted under its reason.
func TestWhyNotJoined(t *testing.T) {
	c := New(Options{Lateness: 10})
	noHost := runtimeSpan("nohost", 0, 100, 0, "")
	noHost.Host = ""
	noPID := runtimeSpan("nopid", 0, 100, 0, "")
	noPID.PID = 0
	byProcess := runtimeSpan("jvm", 0, 100, 7, "")
	c.AddSpans([]span.Span{noHost, noPID, byProcess, runtimeSpan("w", 0, 100, 101, "")})
	otherNode := onThread(50, 101, "x")
	otherNode.Node = "node-b"
	otherPID := onThread(50, 101, "x")
	otherPID.PID = 1
	c.AddEvents([]event.Event{
		onThread(50, 101, "x"),  // tid
		onThread(50, 102, "x"),  // w names 101, a known thread: jvm's 7 is none, so by process
		onThread(500, 101, "x"), // after every span
		otherNode, otherPID,
	}, func([]event.Event) {})
	c.Flush(func([]event.Event) {})
	late := runtimeSpan("late", 0, 10, 0, "")
	late.SpanID = "late"
	c.AddSpans([]span.Span{late})
	got := c.Stats()
	want := Stats{EventsIn: 5, JoinedTID: 1, JoinedPID: 1, Unmatched: 3, UnmatchedNoHost: 1, UnmatchedNoPID: 1, UnmatchedNoSpan: 1,
		SpansIn: 5, SpansNoHost: 1, SpansNoPID: 1, SpansLate: 1, SpansNoEvents: 1, SpansByProcess: 1,
		RetainedSpans: 5, WatermarkNs: got.WatermarkNs}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
}

func TestExplain(t *testing.T) {
	if got := (Stats{JoinedTID: 5}).Explain(0); len(got) != 0 {
		t.Errorf("nothing failed, yet explained: %q", got)
	}
	got := Stats{UnmatchedNoPID: 3, SpansByProcess: 2}.Explain(0)
	want := []string{
		"3 events unjoined, no pid: no span names their process (not traced, or its spans lack process.pid and did not come straight from it)",
		"2 spans name a thread none of their process's recorded threads matched (thread.id is the runtime's, thread.name unknown): joined by process, lower confidence",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Explain (-want +got):\n%s", diff)
	}
}

func TestWhyNoEvents(t *testing.T) {
	joined := onThread(1, 101, "x")
	joined.Join = JoinTID
	tests := []struct {
		name     string
		host     string
		pid      uint32
		during   []event.Event
		recorded bool
		want     string
	}{
		{"no host", "", 7, nil, false, "no kernel events joined: no host (its spans carry no host.name and were not sent to this node's receiver)"},
		{"no pid", "n", 0, nil, false, "no kernel events joined: no pid (its spans carry no process.pid and were not sent straight from the process to this node's receiver)"},
		{"recorded, joined elsewhere", "n", 7, []event.Event{joined}, true, "no kernel events joined, though pid 7 had 1 while it ran: all joined other spans of the process (other threads' requests)"},
		{"recorded, unjoined", "n", 7, []event.Event{joined, onThread(2, 102, "y")}, true, "no kernel events joined, though pid 7 had 2 while it ran (1 unjoined): unknown thread, or its spans came later than --lateness (see the agent's 'why:' lines)"},
		{"recorded, idle", "n", 7, nil, true, "no kernel events joined: pid 7 was recorded but did nothing the recorder hooks while it ran"},
		{"not recorded", "n", 7, nil, false, "no kernel events joined: pid 7 on n was not recorded (select it with --pid 7 or --comm NAME)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := WhyNoEvents(tt.host, tt.pid, tt.during, tt.recorded); got != tt.want {
				t.Errorf("WhyNoEvents = %q\nwant %q", got, tt.want)
			}
		})
	}
}
