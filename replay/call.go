package replay

import (
	"errors"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/replay/recording"
	"github.com/kprobe/kprobe/replay/sandbox"
	"github.com/kprobe/kprobe/replay/sysno"
)

// call is one intercepted syscall, stopped either in the supervisor (l, c: seccomp user
// notification) or in the tracer (st: a ptrace stop). The serving logic does not care
// which; only an fd installation needs a notification.
type call struct {
	seq  int64
	tid  int
	nr   int
	name string
	fam  recording.Family
	args [6]uint64
	at   time.Time

	l  *sandbox.Listener
	c  *sandbox.Call
	cv sandbox.Call
	st *sandbox.Stop

	ans answer // the served paths answer here: no allocation per call

	// A held call (answered later by a timer) is in engine.holding until answered.
	held    bool
	heldAns *answer
	timer   *time.Timer
	done    chan struct{} // closed once the timer's answer is carried
}

// answer resets the call's own answer for the served paths.
func (k *call) answer(rec Record) *answer {
	k.ans = answer{rec: rec}
	return &k.ans
}

func (k *call) arg(i int) int64 { return int64(k.args[i]) }

// fd is the call's fd argument, -1 when it takes none.
func (k *call) fd() int64 {
	switch k.name {
	case "read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2", "pwritev2",
		"recvfrom", "sendto", "recvmsg", "sendmsg", "close", "connect", "accept", "accept4", "dup", "dup2", "dup3",
		"fcntl", "getsockname", "getpeername", "getsockopt", "setsockopt", "shutdown", "fstat", "lseek", "ioctl",
		"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "fsync", "fdatasync", "ftruncate", "sendfile", "splice",
		"openat", "newfstatat", "getdents64", "fchmod", "fchown", "flock":
		return int64(int32(k.args[0]))
	}
	return -1
}

var families [512]recording.Family

func init() {
	for nr := range families {
		families[nr] = recording.FamilyOf(sysno.Name(nr))
	}
}

// calls are reused: one per served call would be most of the engine's garbage.
var calls = sync.Pool{New: func() any { return new(call) }}

func newCall(tid, nr int, args [6]uint64) *call {
	k := calls.Get().(*call)
	*k = call{tid: tid, nr: nr, name: sysno.Name(nr), args: args, at: time.Now()}
	if nr >= 0 && nr < len(families) {
		k.fam = families[nr]
	}
	return k
}

// release hands k back for reuse once nothing refers to it. A held call is not reused:
// withdrawHeld may still wait on it.
func (k *call) release() {
	if !k.held {
		calls.Put(k)
	}
}

// action is how a call is answered.
type action uint8

const (
	doContinue action = iota // the kernel runs it
	doReturn                 // skipped, returns val
	doFail                   // skipped, fails with errno
	doInstall                // an fd is installed and its number returned (notification only)
	doKernel                 // the kernel runs it and is known to return val (a read of a placeholder)
	doKill                   // the program is killed (divergence, --on-divergence stop)
)

// memWrite is memory written into the thread before it is answered.
type memWrite struct {
	addr uint64
	data []byte
	// vec: data is scattered over the iovec array at addr (vecN entries), as readv.
	vec  bool
	vecN int
}

// answer is the decision about one call, carried out by execute.
type answer struct {
	act     action
	val     int64
	errno   unix.Errno
	writes  []memWrite
	install *os.File // doInstall: the file, its target fd (-1: lowest free), cloexec
	newfd   int
	cloexec bool
	replace *replaceFD // done before the answer
	delay   time.Duration
	// undo gives back what deciding consumed, when the call turns out to be gone (a
	// signal interrupted it: the kernel restarts it and it comes again).
	undo []func()
	// pos, at posI and posOff before the call, is the stream position it moved: undone
	// with undo (a field, not a closure: this is the served read's and write's path).
	pos          *streamPos
	posI, posOff int
	posHeld      time.Time // its heldSince: a restarted call waits only what is left
	// after runs, under e.mu, once the program has the answer (the result: a new fd).
	after func(result int64)
	rec   Record
}

type replaceFD struct {
	f       *os.File
	target  int
	cloexec bool
}

func (a *answer) consume(undo func()) { a.undo = append(a.undo, undo) }

// moved records the stream position to restore if the call is withdrawn.
func (a *answer) moved(p *streamPos, i, off int) { a.pos, a.posI, a.posOff = p, i, off }

// giveBack undoes what deciding the call consumed.
func (a *answer) giveBack() {
	for i := len(a.undo) - 1; i >= 0; i-- {
		a.undo[i]()
	}
	if a.pos != nil {
		a.pos.i, a.pos.off, a.pos.heldSince = a.posI, a.posOff, a.posHeld
	}
}

// errGone: the call was withdrawn before it could be answered.
var errGone = sandbox.ErrGone

// carry out the answer: memory first, then the reply. It returns the result the program
// got (for after), or errGone.
func (e *engine) carry(k *call, a *answer) (int64, error) {
	if k.l != nil && (len(a.writes) > 0 || a.replace != nil) && !k.l.Valid(k.c.ID) {
		return 0, errGone
	}
	for _, w := range a.writes {
		var err error
		if w.vec {
			_, err = sandbox.WriteVector(k.tid, w.addr, w.vecN, w.data)
		} else {
			err = sandbox.WriteMemory(k.tid, w.addr, w.data)
		}
		if err != nil {
			// The buffer the program gave is not writable: the kernel would say EFAULT.
			a.act, a.errno = doFail, unix.EFAULT
			break
		}
	}
	if a.replace != nil && a.act != doFail {
		if err := k.l.Replace(k.c, int(a.replace.f.Fd()), a.replace.target, a.replace.cloexec); err != nil {
			if errors.Is(err, errGone) {
				return 0, err
			}
			a.act, a.errno = doFail, unix.EIO
		}
	}
	if k.st != nil {
		return e.carryStop(k, a), nil
	}
	var err error
	switch a.act {
	case doReturn:
		err = k.l.Return(k.c, a.val)
		return a.val, err
	case doFail:
		err = k.l.Fail(k.c, a.errno)
		return -int64(a.errno), err
	case doInstall:
		fd, err := k.l.Install(k.c, int(a.install.Fd()), a.newfd, a.cloexec)
		return int64(fd), err
	case doKill:
		return 0, nil
	case doKernel:
		return a.val, k.l.Continue(k.c)
	}
	return 0, k.l.Continue(k.c)
}

// carryStop answers a call stopped in the tracer: a skipped call has syscall number -1
// and its result in rax, all in the one stop.
func (e *engine) carryStop(k *call, a *answer) int64 {
	r := &k.st.Regs
	switch a.act {
	case doReturn:
		r.Orig_rax = ^uint64(0)
		r.Rax = uint64(a.val)
		k.st.SetRegs()
		return a.val
	case doFail:
		r.Orig_rax = ^uint64(0)
		r.Rax = uint64(-int64(a.errno))
		k.st.SetRegs()
		return -int64(a.errno)
	case doKernel:
		return a.val
	}
	return 0
}
