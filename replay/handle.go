package replay

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/replay/recording"
	"github.com/kprobe/kprobe/replay/sandbox"
	"github.com/kprobe/kprobe/replay/tweak"
)

// minWait is the shortest recorded duration the replay waits out: below it the cost of
// serving the call (about 10 µs) already is the wait.
const minWait = 50 * time.Microsecond

// Call is the supervisor's entry: one notified syscall.
func (e *engine) Call(l *sandbox.Listener, c *sandbox.Call) {
	k := newCall(c.TID, c.Nr, c.Args)
	// c is the supervisor's, reused for the next call: an answer given later (a timer)
	// needs its own copy.
	k.cv = *c
	k.l, k.c = l, &k.cv
	e.handle(k)
}

// Stop is the tracer's entry: a syscall that stopped for a register edit (timeouts), or
// its exit.
func (e *engine) Stop(s *sandbox.Stop) {
	if s.Exit {
		e.restore(s)
		return
	}
	r := &s.Regs
	k := newCall(s.TID, int(r.Orig_rax), [6]uint64{r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9})
	k.st = s
	e.handle(k)
}

func (e *engine) handle(k *call) {
	k.seq = e.seq.Add(1)
	if e.stopped.Load() {
		// The program is being killed; let the call go.
		e.carry(k, &answer{act: doContinue})
		k.release()
		return
	}
	e.withdrawHeld(k.tid)
	a := e.decide(k)
	if a.act == doKill {
		e.kill()
		k.release()
		return
	}
	if a.delay > 0 && k.l != nil {
		// Others' calls are served meanwhile: the wait is a timer, not this goroutine.
		k.held, k.heldAns, k.done = true, a, make(chan struct{})
		e.mu.Lock()
		e.holding[k.tid] = k
		e.timers.Add(1)
		k.timer = time.AfterFunc(a.delay, func() {
			defer e.timers.Done()
			defer close(k.done)
			e.finish(k, a)
		})
		e.mu.Unlock()
		return
	}
	if a.delay > 0 {
		k.st.Delay += a.delay
	}
	e.finish(k, a)
}

// withdrawHeld: a thread has one syscall at a time, so a new call from a thread whose
// earlier call is still held (a timer answers it later) means the earlier one was
// withdrawn (a signal: the kernel restarts it as this new call). What the held answer
// consumed is given back first, so that the restarted call is served the same record,
// and never the one after it.
func (e *engine) withdrawHeld(tid int) {
	e.mu.Lock()
	p := e.holding[tid]
	delete(e.holding, tid)
	if p == nil {
		e.mu.Unlock()
		return
	}
	if p.timer.Stop() {
		p.heldAns.giveBack()
		e.mu.Unlock()
		e.timers.Done()
		return
	}
	e.mu.Unlock()
	<-p.done // being answered now: the answer finds the call gone and gives back itself
}

func (e *engine) finish(k *call, a *answer) {
	// An answer that changes the fd table (an installed or replaced fd) holds the lock
	// from the reply to the table's update: the program's next call, which may already
	// be waiting, must find the fd in the table.
	if a.after != nil {
		e.mu.Lock()
	}
	res, err := e.carry(k, a)
	if a.after == nil {
		e.mu.Lock()
	}
	e.unhold(k)
	if errors.Is(err, errGone) {
		e.log.Debug("call withdrawn before its answer: given back", "syscall", k.name, "tid", k.tid, "seq", k.seq)
		a.giveBack()
		e.mu.Unlock()
		k.release()
		return
	}
	if err != nil {
		e.log.Warn("answering a call", "syscall", k.name, "tid", k.tid, "err", err)
	}
	if a.after != nil && err == nil {
		a.after(res)
	}
	e.mu.Unlock()
	rec := a.rec
	rec.Seq, rec.TID, rec.Syscall, rec.TimeNs = k.seq, k.tid, k.name, k.at.UnixNano()
	rec.FD = k.fd()
	if rec.Kind == 0 {
		rec.Kind = Native
	}
	if a.act != doContinue {
		rec.Result = res
		if res < 0 {
			rec.Errno = unix.ErrnoName(unix.Errno(-res))
		}
	}
	rec.DelayNs = int64(a.delay)
	switch rec.Kind {
	case Served:
		e.served.Add(1)
	case Tweaked:
		e.tweaked.Add(1)
	case Native:
		e.nativeN.Add(1)
	}
	e.emit(rec)
	k.release()
}

// unhold forgets a held call that is being answered. e.mu must be held.
func (e *engine) unhold(k *call) {
	if k.held && e.holding[k.tid] == k {
		delete(e.holding, k.tid)
	}
}

// decide is the policy: injected results first (strace's error= and retval= skip the
// call), then the recording, then the kernel; delays and timeouts on top.
func (e *engine) decide(k *call) *answer {
	tweaks := e.tw.Match(k.nr, k.fd())
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range tweaks {
		switch {
		case t.Errno != 0:
			return e.tweakDelays(&answer{act: doFail, errno: t.Errno, rec: Record{Kind: Tweaked, Tweak: t.Spec,
				Detail: "injected " + unix.ErrnoName(t.Errno)}}, tweaks)
		case t.HasRetval:
			return e.tweakDelays(&answer{act: doReturn, val: t.Retval, rec: Record{Kind: Tweaked, Tweak: t.Spec,
				Detail: fmt.Sprintf("injected return %d", t.Retval)}}, tweaks)
		}
	}
	var a *answer
	if !e.native.Load() && e.isRoot(k.tid) {
		a = e.serve(k, tweaks)
	}
	if a == nil {
		a = e.run(k, tweaks)
	}
	if a.act == doKill {
		return a
	}
	return e.tweakDelays(a, tweaks)
}

// tweakDelays adds delay= and delay_exit= of the tweaks that fired. A served call's
// result is computed without running it, so holding it before or after is the same to
// the program; a native call is held before it runs.
func (e *engine) tweakDelays(a *answer, tweaks []*tweak.Tweak) *answer {
	for _, t := range tweaks {
		if d := t.Delay + t.DelayExit; d > 0 {
			a.delay += d
			if a.rec.Kind != Divergent {
				a.rec.Kind = Tweaked
			}
			a.rec.Tweak = t.Spec
		}
	}
	return a
}

// run handles a call the recording does not answer: natively, except sleeps under
// timing= and timeout tweaks.
func (e *engine) run(k *call, tweaks []*tweak.Tweak) *answer {
	if k.fam == recording.Sleep {
		return e.sleep(k, tweaks)
	}
	a := &answer{act: doContinue}
	e.timeouts(k, a, tweaks)
	return a
}

// diverge records the divergence and answers per the policy: kill the program, or let
// the call (and every later one) run natively.
func (e *engine) diverge(k *call, recorded *recording.Call, recordedText, program string) *answer {
	d := &Divergence{Seq: k.seq, TID: k.tid, Recorded: recordedText, Program: program}
	if recorded != nil {
		d.LogIndex = recorded.Index
	}
	rec := Record{Kind: Divergent, Detail: d.String()}
	if recorded != nil {
		rec.LogIndex = recorded.Index
	}
	if e.div == nil {
		e.div = d
	}
	if e.opts.OnDivergence == ContinueNatively {
		e.native.Store(true)
		return &answer{act: doContinue, rec: rec}
	}
	e.stopped.Store(true)
	rec.Seq, rec.TID, rec.Syscall, rec.TimeNs, rec.FD = k.seq, k.tid, k.name, k.at.UnixNano(), k.fd()
	e.emit(rec)
	return &answer{act: doKill}
}

// kill ends the program: every process of its group (the sandbox gave it its own).
func (e *engine) kill() {
	e.mu.Lock()
	root := e.root
	e.mu.Unlock()
	if root > 0 {
		unix.Kill(-root, unix.SIGKILL)
	}
}
