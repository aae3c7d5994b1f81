package investigate

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Markdown writes the report as markdown meant to be read twice: as plain text pasted
// into a ticket (tables are padded so their columns line up, nothing depends on
// rendering) and rendered on a code host.
func (r Report) Markdown() []byte {
	var b bytes.Buffer
	r.WriteMarkdown(&b)
	return b.Bytes()
}

// WriteMarkdown writes the report to w; it returns w's first write error.
func (r Report) WriteMarkdown(w io.Writer) error {
	ew := &errWriter{w: w}
	s := r.Chain.Subject
	name := RefName(Ref{Kind: s.Kind, ID: s.ID})
	fmt.Fprintf(ew, "# Incident report: %s\n\n", name)
	r.writeSummary(ew)
	r.writeTimeline(ew)
	fmt.Fprintf(ew, "## Causal chain\n\n")
	WriteChainMarkdown(ew, r.Chain)
	r.writeEvidence(ew)
	r.writeExperiments(ew)
	r.writeReproduce(ew)
	return ew.err
}

func (r Report) writeSummary(w io.Writer) {
	s := r.Chain.Subject
	name := RefName(Ref{Kind: s.Kind, ID: s.ID})
	outcome := "completed"
	if s.Status == "error" {
		outcome = "failed"
	}
	fmt.Fprintf(w, "## Summary\n\n")
	fmt.Fprintf(w, "- **What:** %s %s after %s (service %s, pid %d on %s).\n",
		name, outcome, HumanDuration(s.DurationNs), orDash(s.Service), s.PID, orDash(s.Node))
	fmt.Fprintf(w, "- **When:** %s to %s (trace `%s`).\n", Stamp(s.StartNs), Stamp(s.StartNs + s.DurationNs)[11:], orDash(s.TraceID))
	fmt.Fprintf(w, "- **Impact:** %s end to end; %d kernel events joined to %d %s.\n",
		HumanDuration(s.DurationNs), s.Events, s.Spans, plural(s.Spans, "span", "spans"))
	if len(r.Chain.Causes) == 0 {
		fmt.Fprintf(w, "- **Root cause:** none found: no kernel cause explains the time (was the process recorded?).\n\n")
		return
	}
	c := r.Chain.Causes[0]
	fmt.Fprintf(w, "- **Root cause:** %s (explains %s, %s of the time; confidence %.2f).\n\n",
		strings.TrimSuffix(c.Summary, "."), HumanDuration(c.ExplainedNs), Percent(c.Share), c.Confidence)
}

func (r Report) writeTimeline(w io.Writer) {
	s := r.Chain.Subject
	name := RefName(Ref{Kind: s.Kind, ID: s.ID})
	type entry struct {
		ts   int64
		what string
	}
	entries := []entry{{s.StartNs, fmt.Sprintf("%s starts (%s pid %d)", name, orDash(s.Service), s.PID)}}
	for i, c := range r.Chain.Causes {
		if len(r.Evidence[i]) == 0 {
			continue
		}
		// The slowest event of each cause is where the time went.
		e := r.Evidence[i][0]
		entries = append(entries, entry{e.TsNs, fmt.Sprintf("cause #%d %s: %s (%s)", c.Rank, c.Kind, e.What, HumanDuration(e.DurationNs))})
	}
	end := "ends"
	if s.Status == "error" {
		end = "ends in error"
	}
	entries = append(entries, entry{s.StartNs + s.DurationNs, fmt.Sprintf("%s %s after %s", name, end, HumanDuration(s.DurationNs))})
	// Stable insertion order keeps the start first and the end last on equal times.
	for i := 1; i < len(entries); i++ {
		for j := i; j > 0 && entries[j].ts < entries[j-1].ts; j-- {
			entries[j], entries[j-1] = entries[j-1], entries[j]
		}
	}
	fmt.Fprintf(w, "## Timeline (UTC, %s)\n\n", Stamp(s.StartNs)[:10])
	t := table{head: []string{"time", "+ms", "what"}, right: []bool{false, true, false}}
	for _, e := range entries {
		t.add(Clock(e.ts), fmt.Sprintf("%.3f", float64(e.ts-s.StartNs)/1e6), e.what)
	}
	t.write(w)
}

// WriteChainMarkdown writes a causal chain as a ranked table and one path line per cause:
// the report's chain section (WriteChainText is the same chain for a terminal).
func WriteChainMarkdown(w io.Writer, ch Chain) {
	s := ch.Subject
	fmt.Fprintf(w, "%s took %s.\n\n", RefName(Ref{Kind: s.Kind, ID: s.ID}), HumanDuration(s.DurationNs))
	if len(ch.Causes) == 0 {
		fmt.Fprintf(w, "No kernel cause found.\n\n")
		return
	}
	t := table{
		head:  []string{"#", "cause", "explains", "share", "confidence", "join", "rule", "what if"},
		right: []bool{true, false, true, true, true, false, false, true},
	}
	for _, c := range ch.Causes {
		t.add(strconv.Itoa(c.Rank), c.Kind, HumanDuration(c.ExplainedNs), Percent(c.Share),
			fmt.Sprintf("%.2f", c.Confidence), orDash(c.Join), "`"+c.Rule+"`", HumanDuration(c.WhatIfNs))
	}
	t.write(w)
	for _, c := range ch.Causes {
		fmt.Fprintf(w, "%d. **%s** %s\n", c.Rank, c.Kind, c.Summary)
		var hops []string
		for _, st := range c.Path {
			hops = append(hops, stepText(st))
		}
		if len(hops) > 0 {
			fmt.Fprintf(w, "   - path: %s\n", strings.Join(hops, " → "))
		}
		if c.Process != nil {
			fmt.Fprintf(w, "   - held by: %s pid %d on %s\n", c.Process.Comm, c.Process.PID, c.Process.Node)
		}
		if c.Resource != "" {
			fmt.Fprintf(w, "   - resource: %s\n", c.Resource)
		}
	}
	fmt.Fprintln(w)
}

func (r Report) writeEvidence(w io.Writer) {
	fmt.Fprintf(w, "## Kernel evidence\n\n")
	if len(r.Chain.Causes) == 0 {
		fmt.Fprintf(w, "No cause, so no evidence.\n\n")
		return
	}
	for i, c := range r.Chain.Causes {
		fmt.Fprintf(w, "### Cause #%d: %s\n\n", c.Rank, c.Kind)
		if len(r.Evidence[i]) == 0 {
			fmt.Fprintf(w, "No kernel events are named as evidence.\n\n")
			continue
		}
		fmt.Fprintf(w, "The %d slowest of %d events behind it:\n\n", len(r.Evidence[i]), r.EvidenceTotal[i])
		t := table{
			head:  []string{"time", "type", "pid/tid", "cpu", "duration", "what"},
			right: []bool{false, false, false, true, true, false},
		}
		for _, e := range r.Evidence[i] {
			t.add(Clock(e.TsNs), e.Type, fmt.Sprintf("%d/%d", e.PID, e.TID), strconv.Itoa(int(e.CPU)),
				HumanDuration(e.DurationNs), e.What)
		}
		t.write(w)
	}
}

func (r Report) writeExperiments(w io.Writer) {
	fmt.Fprintf(w, "## Replay experiments\n\n")
	if len(r.Experiments) == 0 {
		fmt.Fprintf(w, "None were run. Replay the incident with tweaks from the workstation (`r` on the chain).\n\n")
		return
	}
	t := table{
		head:  []string{"run", "tweaks", "timing", "exit", "duration", "served", "native", "tweaked", "divergent"},
		right: []bool{true, false, false, true, true, true, true, true, true},
	}
	for i, x := range r.Experiments {
		exit := strconv.Itoa(x.ExitCode)
		if x.Err != "" {
			exit = "did not finish"
		}
		tweaks := "none (as recorded)"
		if len(x.Tweaks) > 0 {
			tweaks = "`" + strings.Join(x.Tweaks, "`, `") + "`"
		}
		t.add(strconv.Itoa(i+1), tweaks, orDash(x.Timing), exit, HumanDuration(x.DurationNs),
			strconv.Itoa(x.Served), strconv.Itoa(x.Native), strconv.Itoa(x.Tweaked), strconv.Itoa(x.Divergent))
	}
	t.write(w)
	for i, x := range r.Experiments {
		switch {
		case x.Err != "":
			fmt.Fprintf(w, "- Run %d did not finish: %s\n", i+1, x.Err)
		case x.FirstDivergence != "":
			fmt.Fprintf(w, "- Run %d first diverged at: %s\n", i+1, x.FirstDivergence)
		}
	}
	fmt.Fprintln(w)
}

func (r Report) writeReproduce(w io.Writer) {
	s := r.Chain.Subject
	ref := RefFlags(Ref{Kind: s.Kind, ID: s.ID})
	src := r.Source
	if src == "" {
		src = "--data DIR"
	}
	cmds := [][2]string{
		{fmt.Sprintf("kprobe-tui %s %s", src, ref), "the workstation, opened on this " + strings.ReplaceAll(s.Kind, "_", " ")},
		{fmt.Sprintf("kprobe-tui chain %s %s", src, ref), "the causal chain"},
		{fmt.Sprintf("kprobe-tui events %s %s", src, ref), "every kernel event joined to it (jsonl)"},
		{fmt.Sprintf("kprobe-tui report %s %s", src, ref), "this report"},
	}
	for i, x := range r.Experiments {
		if x.Command != "" {
			cmds = append(cmds, [2]string{x.Command, fmt.Sprintf("replay run %d", i+1)})
		}
	}
	width := 0
	for _, c := range cmds {
		width = max(width, utf8.RuneCountInString(c[0]))
	}
	fmt.Fprintf(w, "## Reproduce\n\n```sh\n")
	for _, c := range cmds {
		fmt.Fprintf(w, "%s%s  # %s\n", c[0], strings.Repeat(" ", width-utf8.RuneCountInString(c[0])), c[1])
	}
	fmt.Fprintf(w, "```\n")
}

// table is a markdown table padded so that it also reads as plain text.
type table struct {
	head  []string
	right []bool
	rows  [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) write(w io.Writer) {
	width := make([]int, len(t.head))
	for i, h := range t.head {
		width[i] = max(utf8.RuneCountInString(h), 3)
	}
	for _, r := range t.rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(escapeCell(c)))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			c = escapeCell(c)
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if t.right[i] {
				b.WriteString(" " + pad + c + " |")
			} else {
				b.WriteString(" " + c + pad + " |")
			}
		}
		fmt.Fprintln(w, b.String())
	}
	line(t.head)
	var b strings.Builder
	b.WriteString("|")
	for i := range t.head {
		if t.right[i] {
			b.WriteString(" " + strings.Repeat("-", width[i]-1) + ": |")
		} else {
			b.WriteString(" " + strings.Repeat("-", width[i]) + " |")
		}
	}
	fmt.Fprintln(w, b.String())
	for _, r := range t.rows {
		line(r)
	}
	fmt.Fprintln(w)
}

// escapeCell keeps a cell on one line and its pipes out of the table's structure.
func escapeCell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
