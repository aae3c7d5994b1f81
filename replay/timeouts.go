package replay

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/replay/sandbox"
	"github.com/kprobe/kprobe/replay/tweak"
)

// stash is what a timeout edit changed in a thread stopped in the tracer, put back when
// its syscall returns so that the program never sees the edit.
type stash struct {
	regOff int // offRdx or offR10, -1 for none
	regVal uint64
	addr   uint64
	mem    []byte
}

// Futex operations with a timeout (linux/futex.h).
const (
	futexWait       = 0
	futexWaitBitset = 9
	futexCmdMask    = 0x7f &^ 0x80 // FUTEX_PRIVATE_FLAG (128) and FUTEX_CLOCK_REALTIME (256) are outside it
	futexRealtime   = 256
)

// timeouts applies a timeout tweak to a call the kernel runs: registers and memory are
// edited in the tracer stop (and restored at its exit); setsockopt, notified, has its
// value rewritten before the kernel reads it.
func (e *engine) timeouts(k *call, a *answer, tweaks []*tweak.Tweak) {
	t := timeoutTweak(tweaks)
	if t == nil {
		return
	}
	a.rec.Kind, a.rec.Tweak = Tweaked, t.Spec
	if k.st == nil {
		if k.name == "setsockopt" && k.arg(1) == unix.SOL_SOCKET && (k.arg(2) == unix.SO_RCVTIMEO || k.arg(2) == unix.SO_SNDTIMEO) && k.args[4] >= 16 {
			d := readTimeval(k.tid, k.args[3])
			if d == 0 {
				d = -1
			}
			nd := t.Timeout.Apply(d)
			if nd >= 0 {
				a.writes = []memWrite{{addr: k.args[3], data: timeval(nd)}}
			}
			a.rec.Detail = fmt.Sprintf("timeout %s → %s", fmtTimeout(d), fmtTimeout(nd))
		}
		return
	}
	r := &k.st.Regs
	ms := func(reg *uint64, off int) {
		v := int32(*reg)
		d := time.Duration(-1)
		if v >= 0 {
			d = time.Duration(v) * time.Millisecond
		}
		nd := t.Timeout.Apply(d)
		nv := int32(-1)
		if nd >= 0 {
			nv = int32((nd + time.Millisecond - 1) / time.Millisecond)
		}
		e.stash[k.tid] = &stash{regOff: off, regVal: *reg}
		_ = reg
		*reg = uint64(uint32(nv))
		k.st.SetRegs()
		k.st.WantExit = true
		a.rec.Detail = fmt.Sprintf("timeout %s → %s", fmtTimeout(d), fmtTimeout(nd))
	}
	spec := func(addr uint64, micro, absolute bool, clock int32, restore bool) {
		if addr == 0 {
			a.rec.Detail = "no timeout passed (infinite): left as is"
			return
		}
		var old [16]byte
		if sandbox.ReadMemory(k.tid, addr, old[:]) != nil {
			return
		}
		d := time.Duration(int64(le64(old[:])))*time.Second + time.Duration(int64(le64(old[8:])))
		if micro {
			d = time.Duration(int64(le64(old[:])))*time.Second + time.Duration(int64(le64(old[8:])))*time.Microsecond
		}
		var now time.Duration
		if absolute {
			var ts unix.Timespec
			unix.ClockGettime(clock, &ts)
			now = time.Duration(ts.Nano())
			d -= now
		}
		nd := t.Timeout.Apply(d)
		b := timespec(nd + now)
		if micro {
			b = timeval(nd)
		}
		if sandbox.WriteMemory(k.tid, addr, b) != nil {
			return
		}
		if restore {
			e.stash[k.tid] = &stash{regOff: -1, addr: addr, mem: old[:]}
			k.st.WantExit = true
		}
		a.rec.Detail = fmt.Sprintf("timeout %s → %s", fmtTimeout(d), fmtTimeout(nd))
	}
	switch k.name {
	case "poll":
		ms(&r.Rdx, offRdx)
	case "epoll_wait", "epoll_pwait":
		ms(&r.R10, offR10)
	case "epoll_pwait2":
		spec(k.args[3], false, false, 0, true)
	case "ppoll":
		spec(k.args[2], false, false, 0, true)
	case "select":
		// select reports the time left in its timeval: the kernel's value stays.
		spec(k.args[4], true, false, 0, false)
	case "pselect6":
		spec(k.args[4], false, false, 0, true)
	case "futex":
		op := k.arg(1)
		switch op & futexCmdMask {
		case futexWait:
			spec(k.args[3], false, false, 0, true)
		case futexWaitBitset:
			clock := int32(unix.CLOCK_MONOTONIC)
			if op&futexRealtime != 0 {
				clock = unix.CLOCK_REALTIME
			}
			spec(k.args[3], false, true, clock, true)
		default:
			a.rec.Kind, a.rec.Tweak = Native, ""
		}
	}
}

// Register offsets restore uses (PtraceRegs fields).
const (
	offRdx = iota + 1
	offR10
)

// restore puts back what a timeout edit changed, at the syscall's exit.
func (e *engine) restore(s *sandbox.Stop) {
	e.mu.Lock()
	st := e.stash[s.TID]
	delete(e.stash, s.TID)
	e.mu.Unlock()
	if st == nil {
		return
	}
	switch st.regOff {
	case offRdx:
		s.Regs.Rdx = st.regVal
		s.SetRegs()
	case offR10:
		s.Regs.R10 = st.regVal
		s.SetRegs()
	}
	if st.mem != nil {
		sandbox.WriteMemory(s.TID, st.addr, st.mem)
	}
}

func timespec(d time.Duration) []byte {
	b := make([]byte, 16)
	putLE64(b, uint64(d/time.Second))
	putLE64(b[8:], uint64(d%time.Second))
	return b
}

func timeval(d time.Duration) []byte {
	b := make([]byte, 16)
	putLE64(b, uint64(d/time.Second))
	putLE64(b[8:], uint64(d%time.Second/time.Microsecond))
	return b
}

func putLE64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (8 * i))
	}
}
