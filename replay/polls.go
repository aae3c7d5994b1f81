package replay

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/replay/recording"
	"github.com/kprobe/kprobe/replay/sandbox"
	"github.com/kprobe/kprobe/replay/tweak"
)

// maxPollFDs bounds the arrays read from the program.
const maxPollFDs = 4096

// servePoll answers poll, ppoll, select and pselect6 that wait on served fds with the
// readiness production saw, after production's wait. With a timeout tweak, the recorded
// readiness is played against the new timeout: data that came after it makes the call
// time out (and arrive at a later call); a recorded timeout followed by data within the
// new, longer timeout becomes that data's readiness.
func (e *engine) servePoll(k *call, tweaks []*tweak.Tweak) *answer {
	var prog pollSet
	var err error
	if k.fam == recording.Poll {
		prog, err = readPollfds(k.tid, k.args[0], int(k.args[1]))
	} else {
		prog, err = readFdSets(k.tid, int(k.args[0]), [3]uint64{k.args[1], k.args[2], k.args[3]})
	}
	if err != nil {
		return nil
	}
	served := map[*recording.Resource]bool{}
	for _, fd := range prog.fds {
		if ent, ok := e.fds[fd]; ok && !(ent.inherited && len(ent.res.Input) == 0) {
			served[ent.res] = true
		}
	}
	if len(served) == 0 {
		return nil
	}
	same := func(c *recording.Call) bool {
		if c.Family != k.fam {
			return false
		}
		for _, r := range c.Fds {
			if served[r] {
				return true
			}
		}
		return len(c.Fds) == 0 && k.fam == recording.Select
	}
	var rc *recording.Call
	for _, c := range e.rec.Polls {
		if !e.cur.used[c] && same(c) {
			rc = c
			break
		}
	}
	if rc == nil {
		return e.diverge(k, nil, fmt.Sprintf("no more %s on %s", k.name, resourceNames(served)), fmt.Sprintf("%s(%v)", k.name, prog.fds))
	}
	e.cur.used[rc] = true
	a := &answer{act: doReturn, rec: Record{Kind: Served, LogIndex: rc.Index, Resource: resourceNames(served), RecordedNs: int64(rc.Ev.DurNs)}}
	a.consume(func() { delete(e.cur.used, rc) })
	ready := rc
	a.delay = e.wait(time.Duration(rc.Ev.DurNs), k.at, k.at)
	if t := timeoutTweak(tweaks); t != nil {
		ready = e.pollTimeout(k, a, t, rc, same)
		if ready == nil {
			a.writes, a.val = prog.cleared(), 0
			return a
		}
	}
	if ready.Ev.Errno != 0 {
		a.act, a.errno = doFail, unix.Errno(ready.Ev.Errno)
		return a
	}
	writes, n := prog.answer(ready, e.fds)
	a.writes, a.val = writes, int64(n)
	return a
}

// pollTimeout plays the recorded readiness against a tweaked timeout. Production's
// readiness arrives a recorded wait after the program first asked (kept across the
// calls that time out before it); the call is ready if that is within the new timeout,
// and times out after it otherwise. A recorded timeout followed by readiness of the same
// fds becomes that readiness when it would have come in time. It sets a's delay and
// returns the recorded call whose readiness to give, or nil for a timeout.
func (e *engine) pollTimeout(k *call, a *answer, t *tweak.Tweak, rc *recording.Call, same func(*recording.Call) bool) *recording.Call {
	asked := pollTimeout(k)
	limit := t.Timeout.Apply(asked)
	a.rec.Kind, a.rec.Tweak = Tweaked, t.Spec
	change := fmt.Sprintf("timeout %s → %s", fmtTimeout(asked), fmtTimeout(limit))
	timeout := func(why string) *recording.Call {
		a.delay = max(limit, 0)
		a.rec.Detail = change + ": " + why
		return nil
	}
	if rc.Ev.Bytes > 0 {
		held, ok := e.cur.held[rc]
		if !ok {
			held = k.at
		}
		remaining := e.tw.Timing.Scale(time.Duration(rc.Ev.DurNs)) - k.at.Sub(held)
		if limit >= 0 && remaining > limit {
			// Not consumed: the readiness is still coming, for a later call.
			delete(e.cur.used, rc)
			a.undo = nil
			e.cur.held[rc] = held
			return timeout(fmt.Sprintf("timed out %s before production's readiness", remaining-limit))
		}
		a.delay = max(remaining, 0)
		a.rec.Detail = change
		return rc
	}
	if rc.Ev.Errno != 0 {
		return rc
	}
	// Production timed out after its own timeout: a longer one may see the readiness
	// that production's next wait on the same fds got.
	var skipped []*recording.Call
	for _, c := range e.rec.Polls {
		if e.cur.used[c] || !same(c) {
			continue
		}
		if c.Ev.Bytes <= 0 {
			skipped = append(skipped, c)
			continue
		}
		arrival := e.tw.Timing.Scale(time.Duration(int64(c.Ev.KtimeNs+c.Ev.DurNs) - int64(rc.Ev.KtimeNs)))
		if limit >= 0 && arrival > limit {
			break
		}
		for _, s := range append(skipped, c) {
			e.cur.used[s] = true
		}
		taken := append(skipped, c)
		a.consume(func() {
			for _, s := range taken {
				delete(e.cur.used, s)
			}
		})
		a.delay = arrival
		a.rec.LogIndex = c.Index
		a.rec.Detail = fmt.Sprintf("%s: ready after %s, where production timed out first", change, arrival)
		return c
	}
	if limit < 0 {
		// Waiting for ever on what the recording never shows arriving: give production's
		// timeout rather than hang.
		a.delay = e.tw.Timing.Scale(time.Duration(rc.Ev.DurNs))
		a.rec.Detail = change + ": nothing arrives in the recording; production's timeout kept"
		return nil
	}
	return timeout("no readiness within it in the recording")
}

// timingFactor is what Timing.Scale multiplies by.
func timingFactor(t tweak.Timing) float64 {
	switch t.Mode {
	case tweak.Fast:
		return 0
	case tweak.Scaled:
		return t.Factor
	}
	return 1
}

func timeoutTweak(tweaks []*tweak.Tweak) *tweak.Tweak {
	for _, t := range tweaks {
		if !t.Timeout.IsZero() {
			return t
		}
	}
	return nil
}

func resourceNames(set map[*recording.Resource]bool) string {
	var names []string
	for r := range set {
		names = append(names, r.String())
	}
	if len(names) == 1 {
		return names[0]
	}
	return fmt.Sprint(names)
}

// pollTimeout reads the timeout the program passed to a poll or select (-1: none).
func pollTimeout(k *call) time.Duration {
	switch k.name {
	case "poll":
		ms := int32(k.args[2])
		if ms < 0 {
			return -1
		}
		return time.Duration(ms) * time.Millisecond
	case "ppoll":
		return readTimespec(k.tid, k.args[2])
	case "select":
		return readTimeval(k.tid, k.args[4])
	case "pselect6":
		return readTimespec(k.tid, k.args[4])
	}
	return -1
}

func readTimespec(tid int, addr uint64) time.Duration {
	if addr == 0 {
		return -1
	}
	var b [16]byte
	if sandbox.ReadMemory(tid, addr, b[:]) != nil {
		return -1
	}
	return time.Duration(int64(le64(b[:])))*time.Second + time.Duration(int64(le64(b[8:])))
}

func readTimeval(tid int, addr uint64) time.Duration {
	if addr == 0 {
		return -1
	}
	var b [16]byte
	if sandbox.ReadMemory(tid, addr, b[:]) != nil {
		return -1
	}
	return time.Duration(int64(le64(b[:])))*time.Second + time.Duration(int64(le64(b[8:])))*time.Microsecond
}

// pollSet is the program's side of a poll or select.
type pollSet struct {
	isPoll bool
	addr   uint64 // poll: the pollfd array
	raw    []byte
	fds    []int
	nfds   int       // select
	sets   [3]uint64 // select: the fd_set pointers
}

func readPollfds(tid int, addr uint64, n int) (pollSet, error) {
	if n <= 0 || n > maxPollFDs {
		return pollSet{}, fmt.Errorf("nfds %d", n)
	}
	p := pollSet{isPoll: true, addr: addr, raw: make([]byte, 8*n)}
	if err := sandbox.ReadMemory(tid, addr, p.raw); err != nil {
		return p, err
	}
	for i := 0; i < n; i++ {
		p.fds = append(p.fds, int(int32(le32(p.raw[8*i:]))))
	}
	return p, nil
}

func readFdSets(tid, nfds int, sets [3]uint64) (pollSet, error) {
	if nfds <= 0 || nfds > maxPollFDs {
		return pollSet{}, fmt.Errorf("nfds %d", nfds)
	}
	size := (nfds + 63) / 64 * 8
	p := pollSet{nfds: nfds, sets: sets, raw: make([]byte, 3*size)}
	seen := map[int]bool{}
	for s, addr := range sets {
		if addr == 0 {
			continue
		}
		part := p.raw[s*size : (s+1)*size]
		if err := sandbox.ReadMemory(tid, addr, part); err != nil {
			return p, err
		}
		for fd := 0; fd < nfds; fd++ {
			if part[fd/8]&(1<<(fd%8)) != 0 && !seen[fd] {
				seen[fd] = true
				p.fds = append(p.fds, fd)
			}
		}
	}
	return p, nil
}

// cleared is the program's set with nothing ready (a timeout).
func (p pollSet) cleared() []memWrite {
	if p.isPoll {
		out := append([]byte(nil), p.raw...)
		for i := 0; i+8 <= len(out); i += 8 {
			out[i+6], out[i+7] = 0, 0
		}
		return []memWrite{{addr: p.addr, data: out}}
	}
	size := len(p.raw) / 3
	var w []memWrite
	for _, addr := range p.sets {
		if addr != 0 {
			w = append(w, memWrite{addr: addr, data: make([]byte, size)})
		}
	}
	return w
}

// answer copies the recorded readiness onto the program's set: an entry is matched to
// the recorded one that named the same resource (or, for the program's own fds, the
// same number). It returns the writes and the ready count.
func (p pollSet) answer(rc *recording.Call, fds map[int]*fdEntry) ([]memWrite, int) {
	rec := rc.Ev.Payload
	if p.isPoll {
		out := append([]byte(nil), p.raw...)
		n := 0
		for i, fd := range p.fds {
			var revents uint16
			for j := 0; j+8 <= len(rec); j += 8 {
				rfd := int(int32(le32(rec[j:])))
				if sameFD(fd, rfd, rc, fds) {
					revents = le16(rec[j+6:])
					break
				}
			}
			out[8*i+6], out[8*i+7] = byte(revents), byte(revents>>8)
			if revents != 0 {
				n++
			}
		}
		return []memWrite{{addr: p.addr, data: out}}, n
	}
	size := len(p.raw) / 3
	rsize := recording.SetSlot
	var w []memWrite
	n := 0
	for s, addr := range p.sets {
		if addr == 0 {
			continue
		}
		out := make([]byte, size)
		for _, fd := range p.fds {
			if p.raw[s*size+fd/8]&(1<<(fd%8)) == 0 {
				continue
			}
			for rfd := 0; rfd < min(int(rc.Arg(0)), 8*rsize); rfd++ {
				if s*rsize+rfd/8 < len(rec) && rec[s*rsize+rfd/8]&(1<<(rfd%8)) != 0 && sameFD(fd, rfd, rc, fds) {
					out[fd/8] |= 1 << (fd % 8)
					n++
					break
				}
			}
		}
		w = append(w, memWrite{addr: addr, data: out})
	}
	return w, n
}

func sameFD(fd, rfd int, rc *recording.Call, fds map[int]*fdEntry) bool {
	if ent, ok := fds[fd]; ok {
		return rc.Fds[rfd] == ent.res
	}
	return fd == rfd && rc.Fds[rfd] == nil
}

// serveRandom gives the program the random bytes production got, when it asks for as
// many as production did next.
func (e *engine) serveRandom(k *call) *answer {
	for _, c := range e.rec.Randoms {
		if e.cur.used[c] {
			continue
		}
		if c.Arg(1) != k.arg(1) || c.Ev.Errno != 0 || int64(len(c.Ev.Payload)) != c.Ev.Bytes {
			return nil // another size (or an unkept one): the program's own randomness
		}
		e.cur.used[c] = true
		a := &answer{act: doReturn, val: c.Ev.Bytes, rec: Record{Kind: Served, LogIndex: c.Index}}
		a.consume(func() { delete(e.cur.used, c) })
		a.writes = []memWrite{{addr: k.args[0], data: c.Ev.Payload}}
		return a
	}
	return nil
}

// sleep answers nanosleep and clock_nanosleep under timing=fast or xF, or a timeout
// tweak: the replay sleeps for the program (a timer, not a ptrace stop).
func (e *engine) sleep(k *call, tweaks []*tweak.Tweak) *answer {
	var d time.Duration
	switch k.name {
	case "nanosleep":
		d = readTimespec(k.tid, k.args[0])
	case "clock_nanosleep":
		d = readTimespec(k.tid, k.args[2])
		if k.args[1]&unix.TIMER_ABSTIME != 0 {
			var now unix.Timespec
			if unix.ClockGettime(int32(k.args[0]), &now) == nil {
				d -= time.Duration(now.Nano())
			}
		}
	}
	if d < 0 {
		return &answer{act: doContinue}
	}
	asked := d
	a := &answer{act: doReturn, rec: Record{Kind: Tweaked}}
	if t := timeoutTweak(tweaks); t != nil {
		d = t.Timeout.Apply(d)
		a.rec.Tweak = t.Spec
	}
	d = e.tw.Timing.Scale(d)
	if d == asked && a.rec.Tweak == "" {
		return &answer{act: doContinue}
	}
	a.delay = max(d, 0)
	a.rec.Detail = fmt.Sprintf("slept %s (asked %s, timing=%s)", a.delay, asked, e.tw.Timing)
	return a
}
