package causal

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/pipeline/span"
)

// Subject is one business object and its spans: those carrying its ID and all their
// descendants.
type Subject struct {
	Object Object
	Spans  []span.Span
}

// LookBehind is how long before a subject's start its analysis looks (a thread blocked
// when the span began reports that block at switch-in, stamped with its start; a request
// sent before it): events that began earlier are not considered, so a chain drawn by the
// streaming engine (a minute of history) and one computed on demand (which reads the
// event log from LookBehind before the subject) are the same.
const LookBehind = 5 * time.Second

// LookAhead is how long after a subject's end its analysis looks (what a process was
// called, whether it was recorded).
const LookAhead = 100 * time.Millisecond

// maxEvidence bounds the event IDs kept per cause (the weightiest).
const maxEvidence = 24

// Analyze attributes the subject's duration to causes using the kernel events in idx.
// The subject's critical path is the thread of each of its top spans in turn (a span
// naming no thread runs on the thread of its process that did most of its joined work).
func Analyze(idx *Index, sub Subject) Result {
	r := Result{Object: sub.Object, Spans: sub.Spans, SpanCount: len(sub.Spans)}
	roots := rootSpans(sub.Spans)
	if len(roots) == 0 {
		return r
	}
	first := roots[0]
	r.StartNs, r.TraceID, r.Service, r.Node, r.PID, r.TID = first.StartNs, first.TraceID, first.Service, first.Host, first.PID, first.TID
	var endNs int64
	ids := map[string]bool{}
	for i := range sub.Spans {
		s := &sub.Spans[i]
		ids[s.SpanID] = true
		if s.Status == span.StatusError {
			r.Status = span.StatusError
		}
	}
	for _, s := range roots {
		endNs = max(endNs, s.EndNs)
	}
	r.DurationNs = endNs - r.StartNs

	an := newAnalyzer(idx)
	an.horizon, an.until = r.StartNs-int64(LookBehind), endNs+int64(LookAhead)
	r.Comm = idx.CommIn(ProcKey{first.Host, first.PID}, an.horizon, an.until)
	var leaves []leafOf
	cursor := r.StartNs
	for _, root := range roots {
		from, to := max(cursor, root.StartNs), root.EndNs
		if to <= from {
			continue
		}
		if from > cursor {
			leaves = append(leaves, leafOf{m: mark{a: cursor, b: from, c: an.unexplained(), rule: RuleRemainder, conf: 1, join: JoinTimeOverlap}})
		}
		k, conf, join, joined := an.threadOf(root, ids)
		r.Events += joined
		if r.TID == 0 && root.SpanID == first.SpanID {
			r.TID = k.TID
		}
		v := idx.view(k, from, to, an.horizon)
		def := mark{c: an.unexplained(), rule: RuleRemainder, conf: conf, join: join}
		on := spansOn(sub.Spans, root)
		for _, m := range resolve(an.threadMarks(v, from, to, conf, join), from, to, &def) {
			leaves = append(leaves, leafOf{m: m, span: innermost(on, (m.a+m.b)/2)})
		}
		cursor = to
	}
	r.Causes = an.rank(leaves, r.DurationNs, idx, r)
	return r
}

// leafOf is a resolved mark and the innermost span it fell in.
type leafOf struct {
	m    mark
	span *span.Span
}

// rootSpans are the subject's spans whose parent is not one of them, by start time.
func rootSpans(spans []span.Span) []*span.Span {
	ids := map[string]bool{}
	for i := range spans {
		ids[spans[i].TraceID+"/"+spans[i].SpanID] = true
	}
	var out []*span.Span
	for i := range spans {
		s := &spans[i]
		if s.ParentID == "" || !ids[s.TraceID+"/"+s.ParentID] {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *span.Span) int {
		return cmp.Or(cmp.Compare(a.StartNs, b.StartNs), cmp.Compare(b.EndNs, a.EndNs))
	})
	return out
}

// threadOf picks the thread a span ran on: the one it names, else the thread of its
// process with the most events joined to the subject.
func (an *analyzer) threadOf(s *span.Span, ids map[string]bool) (k ThreadKey, conf float64, join string, joined int) {
	p := ProcKey{s.Host, s.PID}
	best, bestIO := -1, -1
	for _, tid := range an.idx.Threads(p) {
		n, io := 0, 0
		for _, e := range an.idx.Thread(ThreadKey{p.Node, p.PID, tid}, s.StartNs, s.EndNs) {
			if e.TraceID == s.TraceID && ids[e.SpanID] && (e.TsNs >= s.StartNs || end(&e) > s.StartNs) {
				n++
				if e.Type != event.TypeSchedSwitch {
					io++
				}
			}
		}
		joined += n
		if s.TID == 0 && (io > bestIO || (io == bestIO && n > best)) {
			best, bestIO, k = n, io, ThreadKey{p.Node, p.PID, tid}
		}
	}
	if s.TID != 0 {
		return ThreadKey{p.Node, p.PID, s.TID}, 1, JoinTID, joined
	}
	if best < 0 {
		return ThreadKey{p.Node, p.PID, s.PID}, 0.5, JoinPID, joined
	}
	return k, 0.7, JoinPID, joined
}

// spansOn lists the subject spans that ran on root's thread within it (root included).
func spansOn(spans []span.Span, root *span.Span) []*span.Span {
	var out []*span.Span
	for i := range spans {
		s := &spans[i]
		if s.Host == root.Host && s.PID == root.PID && (s.TID == root.TID || s.TID == 0) &&
			s.StartNs >= root.StartNs && s.EndNs <= root.EndNs {
			out = append(out, s)
		}
	}
	return out
}

// innermost is the latest-starting span covering t.
func innermost(spans []*span.Span, t int64) *span.Span {
	var best *span.Span
	for _, s := range spans {
		if s.StartNs <= t && t < s.EndNs && (best == nil || s.StartNs >= best.StartNs) {
			best = s
		}
	}
	return best
}

// rank adds up leaves into causes, largest first, unexplained always present.
func (an *analyzer) rank(leaves []leafOf, dur int64, idx *Index, r Result) []Cause {
	type acc struct {
		c      *causeInfo
		ns     int64
		confNs float64
		rules  map[string]int64
		joins  map[string]int64
		spans  map[*span.Span]int64
		ev     map[uint64]int64
	}
	accs := map[*causeInfo]*acc{}
	get := func(c *causeInfo) *acc {
		a := accs[c]
		if a == nil {
			a = &acc{c: c, rules: map[string]int64{}, joins: map[string]int64{}, spans: map[*span.Span]int64{}, ev: map[uint64]int64{}}
			accs[c] = a
		}
		return a
	}
	get(an.unexplained())
	for _, l := range leaves {
		d := l.m.b - l.m.a
		a := get(l.m.c)
		a.ns += d
		a.confNs += l.m.conf * float64(d)
		a.rules[l.m.rule] += d
		a.joins[l.m.join] += d
		if l.span != nil {
			a.spans[l.span] += d
		}
		for _, id := range l.m.ev {
			a.ev[id] += d
		}
	}
	out := make([]Cause, 0, len(accs))
	for _, a := range accs {
		if p := a.c.proc; p != nil {
			// Named now, with every name seen, not as the cause was first met.
			if comm := an.comm(ProcKey{p.Node, p.PID}); comm != "" {
				p.Comm = comm
			}
		}
		c := Cause{Key: a.c.key, Kind: a.c.kind, ExplainedNs: a.ns, WhatIfNs: dur - a.ns, Process: a.c.proc,
			Resource: a.c.resource, ResourceID: a.c.resourceID, Rule: heaviest(a.rules), Join: heaviest(a.joins), resNode: a.c.resNode}
		if a.c.kind == KindUnexplained {
			c.Rule = RuleRemainder
		}
		if dur > 0 {
			c.Share = float64(a.ns) / float64(dur)
		}
		if a.ns > 0 {
			c.Confidence = a.confNs / float64(a.ns)
		}
		var sp *span.Span
		var spNs int64 = -1
		for s, ns := range a.spans {
			if ns > spNs || (ns == spNs && s.SpanID < sp.SpanID) {
				sp, spNs = s, ns
			}
		}
		if sp != nil {
			c.SpanID, c.SpanName = sp.SpanID, sp.Name
		}
		c.Evidence = topEvidence(a.ev)
		c.Path = an.path(a.c, sp, a.ns)
		c.Summary = summary(&c, a.c, r, idx)
		out = append(out, c)
	}
	// Deterministic from here on: folding adds up in order.
	slices.SortFunc(out, func(x, y Cause) int { return cmp.Compare(x.Key, y.Key) })
	out = foldSmall(out, dur)
	RankCauses(out)
	return out
}

// smallShare: causes below this share of the subject (and 1ms) are folded, per kind, into
// one "others" cause, so a busy machine's dozen passing preemptions read as one line. The
// shares still add up.
const smallShare = 0.01

func foldSmall(cs []Cause, dur int64) []Cause {
	small := func(c Cause) bool {
		return c.Kind != KindUnexplained && c.ExplainedNs < int64(smallShare*float64(dur)) && c.ExplainedNs < 1_000_000
	}
	byKind := map[string][]int{}
	for i, c := range cs {
		if small(c) {
			byKind[c.Kind] = append(byKind[c.Kind], i)
		}
	}
	drop := map[int]bool{}
	var folded []Cause
	for _, kind := range slices.Sorted(maps.Keys(byKind)) {
		idx := byKind[kind]
		if len(idx) < 2 {
			continue
		}
		f := Cause{Key: kind + "|others", Kind: kind, Rule: cs[idx[0]].Rule, Join: cs[idx[0]].Join}
		var names []string
		var confNs float64
		for _, i := range idx {
			c := cs[i]
			drop[i] = true
			f.ExplainedNs += c.ExplainedNs
			confNs += c.Confidence * float64(c.ExplainedNs)
			if len(f.Evidence) < maxEvidence {
				f.Evidence = append(f.Evidence, c.Evidence[:min(len(c.Evidence), 2)]...)
			}
			if c.Process != nil {
				names = append(names, c.Process.Comm)
			} else {
				names = append(names, c.Resource)
			}
		}
		slices.Sort(names)
		names = slices.Compact(names)
		if len(names) > 4 {
			names = append(names[:4], "...")
		}
		f.WhatIfNs = dur - f.ExplainedNs
		if dur > 0 {
			f.Share = float64(f.ExplainedNs) / float64(dur)
		}
		if f.ExplainedNs > 0 {
			f.Confidence = confNs / float64(f.ExplainedNs)
		}
		f.Resource = fmt.Sprintf("%d small causes: %s", len(idx), strings.Join(names, ", "))
		f.Summary = fmt.Sprintf("%s (%.0f%%) in %d small %s causes, each under %.0f%% of the time (%s)",
			time.Duration(f.ExplainedNs).Round(time.Microsecond), 100*f.Share, len(idx), kind, 100*smallShare, strings.Join(names, ", "))
		f.Path = []Step{{Kind: kind, Name: f.Resource, DurationNs: f.ExplainedNs}}
		folded = append(folded, f)
	}
	out := folded
	for i, c := range cs {
		if !drop[i] {
			out = append(out, c)
		}
	}
	return out
}

func heaviest(m map[string]int64) string {
	best, bestNs := "", int64(-1)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] > bestNs {
			best, bestNs = k, m[k]
		}
	}
	return best
}

func topEvidence(ev map[uint64]int64) []uint64 {
	ids := slices.Collect(maps.Keys(ev))
	slices.SortFunc(ids, func(a, b uint64) int { return cmp.Or(cmp.Compare(ev[b], ev[a]), cmp.Compare(a, b)) })
	return ids[:min(len(ids), maxEvidence)]
}

// path: the span where the cause weighed most, then what the cause names.
func (an *analyzer) path(c *causeInfo, sp *span.Span, ns int64) []Step {
	var out []Step
	if sp != nil {
		out = append(out, Step{Kind: "span", Name: sp.Name, DurationNs: sp.EndNs - sp.StartNs,
			Process: an.proc(ProcKey{sp.Host, sp.PID}), Detail: sp.Service + " span " + sp.SpanID})
	}
	return append(out, an.steps(c, ns)...)
}

// steps: what the cause names, after the span; reached through lock holders, each lock
// and its holder first.
func (an *analyzer) steps(c *causeInfo, ns int64) []Step {
	var out []Step
	for _, v := range c.via {
		out = append(out, Step{Kind: "lock", Name: v.resource, DurationNs: ns, Detail: v.detail},
			Step{Kind: "process", Name: v.proc.Comm, Process: v.proc, Detail: "held what was waited for, meanwhile delayed by what follows"})
	}
	switch c.kind {
	case KindSlowPeer:
		out = append(out, c.path...)
	case KindCPU:
		out = append(out, Step{Kind: "cpu", Name: c.resource, DurationNs: ns, Detail: "runnable, waiting for the CPU"})
		if c.proc != nil {
			out = append(out, Step{Kind: "process", Name: c.proc.Comm, Process: c.proc, Detail: "held the CPU"})
		}
	case KindStorage:
		out = append(out, Step{Kind: "file", Name: c.resource, DurationNs: ns, Process: c.proc, Detail: "reads, writes and their flushes"})
	case KindMemory:
		out = append(out, Step{Kind: "page_faults", Name: c.resource, DurationNs: ns, Process: c.proc})
	case KindLock:
		out = append(out, Step{Kind: "lock", Name: c.resource, DurationNs: ns, Detail: c.detail},
			Step{Kind: "process", Name: c.proc.Comm, Process: c.proc, Detail: "woke the waiting thread (held what it waited for)"})
	case KindUnexplained:
		out = append(out, Step{Kind: "unexplained", Name: "own work or unrecorded waits", DurationNs: ns})
	}
	return out
}

// summary is the one sentence an SRE pastes into the incident channel.
func summary(c *Cause, ci *causeInfo, r Result, idx *Index) string {
	s := rootSummary(c, ci, r, idx)
	for _, v := range ci.via {
		s += fmt.Sprintf("; reached through %s, which held what was waited for (%s)", v.proc, v.resource)
	}
	return s
}

func rootSummary(c *Cause, ci *causeInfo, r Result, idx *Index) string {
	d := time.Duration(c.ExplainedNs).Round(time.Microsecond)
	pct := fmt.Sprintf("%.0f%%", 100*c.Share)
	switch c.Kind {
	case KindCPU:
		if c.Process == nil {
			return fmt.Sprintf("%s (%s) runnable but waiting for %s", d, pct, c.Resource)
		}
		return fmt.Sprintf("%s (%s) runnable while %s held %s", d, pct, c.Process, c.Resource)
	case KindSlowPeer:
		if c.Process == nil {
			return fmt.Sprintf("%s (%s) waiting on %s (peer not recorded)", d, pct, c.Resource)
		}
		return fmt.Sprintf("%s (%s) waiting for %s to answer on %s", d, pct, c.Process, c.Resource)
	case KindStorage:
		s := fmt.Sprintf("%s (%s) in I/O on %s", d, pct, c.Resource)
		if o := otherWriters(idx, ci.file, r); o != "" {
			s += "; also used meanwhile by " + o
		}
		return s
	case KindMemory:
		return fmt.Sprintf("%s (%s) in page faults of %s", d, pct, c.Process)
	case KindLock:
		return fmt.Sprintf("%s (%s) blocked until %s (%s) let it go", d, pct, c.Process, c.Resource)
	}
	return fmt.Sprintf("%s (%s) not explained by the kernel events: the service's own work, or waits nothing recorded explains", d, pct)
}

// otherWriters names the other processes that read or wrote the file during the subject.
func otherWriters(idx *Index, f *FileKey, r Result) string {
	if f == nil {
		return ""
	}
	others := map[ProcKey]bool{}
	for _, e := range idx.File(*f, r.StartNs, r.StartNs+r.DurationNs) {
		if e.PID != r.PID && e.TsNs+int64(e.DurNs) > r.StartNs {
			others[ProcKey{e.Node, e.PID}] = true
		}
	}
	var names []string
	for _, p := range slices.SortedFunc(maps.Keys(others), func(a, b ProcKey) int { return cmp.Compare(a.PID, b.PID) }) {
		comm := idx.CommIn(p, r.StartNs-int64(LookBehind), r.StartNs+r.DurationNs+int64(LookAhead))
		names = append(names, (&Proc{Node: p.Node, PID: p.PID, Comm: comm}).String())
	}
	if len(names) > 3 {
		names = append(names[:3], "...")
	}
	return strings.Join(names, ", ")
}
