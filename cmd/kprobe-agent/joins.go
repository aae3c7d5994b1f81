package main

import (
	"fmt"
	"io"
	"time"

	"github.com/kprobe/kprobe/pipeline/correlate"
)

// printJoins prints how events were joined to spans and, one line each, why the rest
// were not.
func printJoins(w io.Writer, s correlate.Stats, lateness time.Duration) {
	fmt.Fprintf(w, "joins: tid=%d thread_name=%d on_cpu=%d pid=%d peer_pid=%d unmatched=%d (no_host=%d no_pid=%d other_thread=%d no_span_in_time=%d)\n",
		s.JoinedTID, s.JoinedThreadName, s.JoinedOnCPU, s.JoinedPID, s.JoinedPeerPID, s.Unmatched,
		s.UnmatchedNoHost, s.UnmatchedNoPID, s.UnmatchedThread, s.UnmatchedNoSpan)
	for _, line := range s.Explain(lateness) {
		fmt.Fprintf(w, "  why: %s\n", line)
	}
}
