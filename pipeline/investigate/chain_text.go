package investigate

import (
	"fmt"
	"io"
	"strings"
)

// WriteChainText writes a causal chain for a terminal: the subject, then each cause with
// what it names, the path down to it and what the subject would have taken without it.
// (WriteChainMarkdown writes the same chain as the incident report's section.)
func WriteChainText(w io.Writer, ch Chain) error {
	ew := &errWriter{w: w}
	s := ch.Subject
	fmt.Fprintf(ew, "%s  %s", RefName(Ref{Kind: s.Kind, ID: s.ID}), HumanDuration(s.DurationNs))
	if s.Status == "error" {
		fmt.Fprint(ew, "  FAILED")
	}
	fmt.Fprintf(ew, "  (%s pid %d on %s, trace %s, %d %s, %d kernel events)\n",
		orDash(s.Comm), s.PID, orDash(s.Node), orDash(s.TraceID), s.Spans, plural(s.Spans, "span", "spans"), s.Events)
	if len(ch.Causes) == 0 {
		fmt.Fprintln(ew, "  no kernel cause found")
		return ew.err
	}
	for _, c := range ch.Causes {
		fmt.Fprintf(ew, "\n#%d %-16s %9s  %5s  what if: %s  confidence %.2f", c.Rank, c.Kind, HumanDuration(c.ExplainedNs),
			Percent(c.Share), HumanDuration(c.WhatIfNs), c.Confidence)
		if c.Join != "" {
			fmt.Fprintf(ew, " (%s)", c.Join)
		}
		fmt.Fprintf(ew, "\n   %s\n", c.Summary)
		if len(c.Path) > 0 {
			hops := make([]string, len(c.Path))
			for i, st := range c.Path {
				hops[i] = stepText(st)
			}
			fmt.Fprintf(ew, "   path: %s\n", strings.Join(hops, " -> "))
		}
		fmt.Fprintf(ew, "   rule: %s\n", c.Rule)
		if n := len(c.Evidence); n > 0 {
			fmt.Fprintf(ew, "   evidence: %d %s, e.g. %s\n", n, plural(n, "event", "events"), strings.Join(c.Evidence[:min(n, 3)], " "))
		}
	}
	return ew.err
}

func stepText(st Step) string {
	s := st.Name
	if !strings.HasPrefix(st.Name, st.Kind) {
		s = st.Kind + " " + st.Name
	}
	if st.Kind == "process" && st.Process != nil {
		s = fmt.Sprintf("%s %s (pid %d)", st.Kind, orDash(st.Process.Comm), st.Process.PID)
	}
	if st.DurationNs > 0 {
		s += " [" + HumanDuration(st.DurationNs) + "]"
	}
	return s
}
