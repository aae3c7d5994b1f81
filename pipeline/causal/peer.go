package causal

import (
	"cmp"
	"slices"
	"strconv"
	"time"

	"github.com/kprobe/kprobe/pipeline/event"
)

// Following a wait across processes: the thread waited for a reply on connection U. The
// other end of U is the same connection reversed (4-tuple); its process received our
// request and sent the reply, and what it did in between is where our time went. If it
// itself waited on another connection in between (a gateway forwarding), the wait goes
// one hop further, until a process that spent the time itself.
const (
	// Two ends of a connection may be stamped by different clocks (nodes) and a
	// receive can complete before the sender's own event is stamped.
	peerSlackNs = 2_000_000
	// How far back the request of a reply is looked for.
	requestLookbackNs = int64(60 * time.Second)
	maxHops           = 6
)

type interval struct{ a, b int64 }

// piece says who owns a stretch of a wait.
type piece struct {
	a, b int64
	c    *causeInfo
	ev   []uint64
}

// peerMarks attributes the blocked stretch iv to the processes behind connection u,
// whose reply recv ended the wait.
func (an *analyzer) peerMarks(v *threadView, iv interval, u Tuple, recv *event.Event, off uint64, conf float64, join string) []mark {
	w, requested := an.waitOn(u, v.k.Node, recv, iv.a)
	if requested {
		join = JoinTuple
	} else {
		conf *= 0.7
		join = JoinTimeOverlap
	}
	def, defEv, pieces := an.follow(v.k.Node, u, w, nil, 1, map[Tuple]bool{})
	var out []mark
	add := func(a, b int64, c *causeInfo, ev []uint64) {
		if a < b {
			out = append(out, mark{a: a, b: b, prio: prioBlocked, c: c, rule: RulePeerWait, conf: conf, join: join,
				ev: append([]uint64{off, recv.ID}, ev...)})
		}
	}
	t := iv.a
	for _, p := range pieces {
		if p.b <= t || p.a >= iv.b {
			continue
		}
		add(t, max(t, p.a), def, defEv)
		add(max(t, p.a), min(p.b, iv.b), p.c, p.ev)
		t = min(p.b, iv.b)
	}
	add(t, iv.b, def, defEv)
	return out
}

// waitOn returns how long the thread waited for the reply that recv read on u: from the
// end of the request (the last send on u since the previous reply) to the reply. Without
// a request in sight the wait starts at from, and requested is false.
func (an *analyzer) waitOn(u Tuple, node string, recv *event.Event, from int64) (interval, bool) {
	evs := an.idx.Socket(u, max(recv.TsNs-requestLookbackNs, an.horizon), recv.TsNs)
	for i := len(evs) - 1; i >= 0; i-- {
		e := &evs[i]
		if e.Node != node || e.ID == recv.ID {
			continue
		}
		if e.Type == event.TypeTCPRecv && e.Errno == 0 && e.Bytes > 0 {
			break // an earlier reply: nothing was sent for this one since
		}
		if e.Type == event.TypeTCPSend && e.Errno == 0 && e.Bytes > 0 {
			return interval{min(end(e), from), end(recv)}, true
		}
	}
	return interval{from, end(recv)}, false
}

// follow finds who owned the wait w on connection u (as seen from node). def owns the
// whole wait unless a piece, further down the chain, says otherwise.
func (an *analyzer) follow(node string, u Tuple, w interval, path []Step, hop int, seen map[Tuple]bool) (def *causeInfo, defEv []uint64, pieces []piece) {
	seen[u] = true
	wait := Step{Kind: "tcp_wait", Name: u.String(), DurationNs: w.b - w.a}
	peer := u.Reverse()
	loopback := u.Remote.Addr().IsLoopback()
	var pe []event.Event
	for _, e := range an.idx.Socket(peer, w.a-peerSlackNs, w.b+peerSlackNs) {
		if !loopback || e.Node == node {
			pe = append(pe, e)
		}
	}
	// The reply is the last send before our receive completed; the request, the last
	// receive before the reply.
	var reply, req *event.Event
	for i := len(pe) - 1; i >= 0; i-- {
		e := &pe[i]
		if reply == nil && e.Type == event.TypeTCPSend && e.Errno == 0 && e.Bytes > 0 && e.TsNs <= w.b+peerSlackNs {
			reply = e
		} else if reply != nil && e.Type == event.TypeTCPRecv && e.Errno == 0 && e.Bytes > 0 && end(e) <= reply.TsNs {
			req = e
			break
		}
	}
	if reply == nil {
		// The peer was not recorded: its address is all we know.
		def = an.cause(KindSlowPeer+"|"+u.Remote.String(), func() *causeInfo {
			return &causeInfo{kind: KindSlowPeer, resource: u.String(), resourceID: socketID(u),
				resNode: socketNode(u),
				path:    append(slices.Clone(path), wait, Step{Kind: "endpoint", Name: u.Remote.String(), Detail: "peer not recorded"})}
		})
		return def, nil, nil
	}
	p := ProcKey{reply.Node, reply.PID}
	h := interval{w.a, reply.TsNs}
	defEv = []uint64{reply.ID}
	if req != nil {
		h.a = max(end(req), w.a)
		defEv = append(defEv, req.ID)
	}
	hopPath := append(slices.Clone(path), wait, Step{Kind: "process", Name: an.proc(p).Comm, DurationNs: h.b - h.a, Process: an.proc(p),
		Detail: "hop " + strconv.Itoa(hop) + ": received the request and sent the reply; " +
			an.spent(ThreadKey{reply.Node, reply.PID, reply.TID}, h)})
	def = an.cause(KindSlowPeer+"|"+p.Node+"|"+strconv.FormatUint(uint64(p.PID), 10), func() *causeInfo {
		return &causeInfo{kind: KindSlowPeer, proc: an.proc(p), resource: u.String(), resourceID: socketID(u),
			resNode: socketNode(u), path: hopPath}
	})
	if hop >= maxHops || h.b <= h.a {
		return def, defEv, nil
	}
	// Onward: the peer's own waits for replies on other connections while it handled us.
	for _, ow := range an.onward(p, peer, h) {
		if seen[ow.u] {
			continue
		}
		d, dEv, sub := an.follow(p.Node, ow.u, ow.w, hopPath, hop+1, seen)
		t := ow.w.a
		for _, s := range sub {
			if s.a > t {
				pieces = append(pieces, piece{a: t, b: s.a, c: d, ev: dEv})
			}
			pieces = append(pieces, s)
			t = s.b
		}
		if t < ow.w.b {
			pieces = append(pieces, piece{a: t, b: ow.w.b, c: d, ev: dEv})
		}
	}
	return def, defEv, pieces
}

type onwardWait struct {
	u Tuple
	w interval
}

// onward lists, in time order and without overlap, the waits for replies that process p
// made on connections other than in during h.
func (an *analyzer) onward(p ProcKey, in Tuple, h interval) []onwardWait {
	tuples := map[Tuple]bool{}
	for _, tid := range an.idx.Threads(p) {
		for _, e := range an.idx.Thread(ThreadKey{p.Node, p.PID, tid}, h.a, h.b) {
			if (e.Type == event.TypeTCPSend || e.Type == event.TypeTCPRecv) && e.TsNs >= h.a {
				if t := TupleOf(&e); t != in {
					tuples[t] = true
				}
			}
		}
	}
	var out []onwardWait
	for u := range tuples {
		evs := an.idx.Socket(u, h.a, h.b+peerSlackNs)
		var sent int64 = -1
		for i := range evs {
			e := &evs[i]
			if e.Node != p.Node || e.PID != p.PID || e.Errno != 0 || e.Bytes <= 0 || e.TsNs < h.a {
				continue
			}
			switch e.Type {
			case event.TypeTCPSend:
				if sent < 0 {
					sent = end(e)
				}
			case event.TypeTCPRecv:
				if sent >= 0 && end(e) <= h.b+peerSlackNs {
					out = append(out, onwardWait{u, interval{sent, min(end(e), h.b)}})
				}
				sent = -1
			}
		}
	}
	slices.SortFunc(out, func(x, y onwardWait) int { return cmp.Compare(x.w.a, y.w.a) })
	// Overlapping waits (parallel calls): the later one keeps only what the earlier did not.
	t := h.a
	kept := out[:0]
	for _, o := range out {
		o.w.a = max(o.w.a, t)
		if o.w.a < o.w.b {
			kept = append(kept, o)
			t = o.w.b
		}
	}
	return kept
}

func socketID(u Tuple) string { return "socket/" + u.Local.String() + "/" + u.Remote.String() }

func socketNode(u Tuple) *Node {
	return &Node{ID: socketID(u), Label: LabelSocket, Props: map[string]string{
		"local": u.Local.String(), "remote": u.Remote.String(), "name": u.String()}}
}

// spent says how the thread that answered spent the time it held the request: on CPU,
// runnable but waiting for one, or blocked.
func (an *analyzer) spent(k ThreadKey, h interval) string {
	var runnable, blocked int64
	for _, e := range an.idx.Thread(k, h.a, h.b) {
		if e.Type != event.TypeSchedSwitch {
			continue
		}
		a, b := max(e.TsNs, h.a), min(end(&e), h.b)
		if a >= b {
			continue
		}
		wake := end(&e) - int64(min(e.RunqDelayNs, e.DurNs))
		if e.Preempted {
			wake = e.TsNs
		}
		r := min(b, end(&e)) - max(a, wake)
		runnable += max(r, 0)
		blocked += (b - a) - max(r, 0)
	}
	on := (h.b - h.a) - runnable - blocked
	d := func(ns int64) string { return time.Duration(ns).Round(time.Microsecond).String() }
	return "on CPU " + d(on) + ", waiting for a CPU " + d(runnable) + ", blocked " + d(blocked)
}
