package replay

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/replay/recording"
	"github.com/kprobe/kprobe/replay/sandbox"
	"github.com/kprobe/kprobe/replay/tweak"
)

// serveConnect answers a connect to an address production connected to with production's
// result, and puts a placeholder behind the program's socket: the peer may be long gone,
// and nothing of the replay may reach it. A connect the recording does not have, to a
// network address, is a divergence: it would reach the live world.
func (e *engine) serveConnect(k *call) *answer {
	fd := int(int32(k.args[0]))
	alen := int(min(k.args[2], 128))
	addr := make([]byte, alen)
	if err := sandbox.ReadMemory(k.tid, k.args[1], addr); err != nil {
		return nil // the kernel will say EFAULT
	}
	want := recording.SockaddrString(addr)
	var rc *recording.Call
	for _, c := range e.rec.Connects {
		if !e.cur.used[c] && recording.SockaddrString(c.Ev.Payload) == want {
			rc = c
			break
		}
	}
	if rc == nil {
		if !recording.IsNetwork(addr) {
			return nil // a local unix socket: the program's own
		}
		return e.diverge(k, nil, "no connect to "+want, fmt.Sprintf("connect(%d, %s)", fd, want))
	}
	e.cur.used[rc] = true
	a := &answer{rec: Record{Kind: Served, LogIndex: rc.Index, Resource: rc.Res.String(), RecordedNs: int64(rc.Ev.DurNs)}}
	a.consume(func() { delete(e.cur.used, rc) })
	a.delay = e.wait(durOf(rc), k.at, k.at)
	errno := unix.Errno(rc.Ev.Errno)
	if errno != 0 && errno != unix.EINPROGRESS {
		a.act, a.errno = doFail, errno
		return a
	}
	if k.l == nil {
		return nil
	}
	flags := fdFlags(k.tid, fd)
	ph, err := e.socketPlaceholder(flags&unix.O_NONBLOCK != 0)
	if err != nil {
		e.log.Warn("placeholder for a served socket", "err", err)
		delete(e.cur.used, rc)
		return e.diverge(k, rc, rc.String(), fmt.Sprintf("connect(%d, %s) (no placeholder: %v)", fd, want, err))
	}
	a.replace = &replaceFD{f: ph, target: fd, cloexec: flags&unix.O_CLOEXEC != 0}
	if errno == unix.EINPROGRESS {
		a.act, a.errno = doFail, errno
	} else {
		a.act, a.val = doReturn, 0
	}
	res := rc.Res
	a.after = func(int64) {
		e.fds[fd] = &fdEntry{res: res, ph: ph}
		e.servedRes[res] = true
	}
	return a
}

// serveAccept hands the program the next connection production accepted, with its peer
// address, behind a placeholder.
func (e *engine) serveAccept(k *call) *answer {
	lfd := int(int32(k.args[0]))
	var rc *recording.Call
	pending := false
	for _, c := range e.rec.Accepts {
		if e.cur.used[c] {
			continue
		}
		if c.Ev.Errno == int32(unix.EAGAIN) {
			pending = true
			continue // production polled before the connection came: the replay does not
		}
		if c.Res == nil || c.Res.FD == lfd || rc == nil {
			rc = c
			if c.Res == nil || c.Res.FD == lfd {
				break
			}
		}
	}
	if rc == nil {
		what := "no more accepted connections"
		if pending {
			what += " (production was still waiting when the recording ended)"
		}
		return e.diverge(k, nil, what, fmt.Sprintf("%s(%d)", k.name, lfd))
	}
	// Every EAGAIN before it is consumed with it.
	var taken []*recording.Call
	for _, c := range e.rec.Accepts {
		if c == rc {
			break
		}
		if !e.cur.used[c] && c.Ev.Errno == int32(unix.EAGAIN) {
			taken = append(taken, c)
		}
	}
	taken = append(taken, rc)
	for _, c := range taken {
		e.cur.used[c] = true
	}
	a := &answer{rec: Record{Kind: Served, LogIndex: rc.Index, RecordedNs: int64(rc.Ev.DurNs)}}
	a.consume(func() {
		for _, c := range taken {
			delete(e.cur.used, c)
		}
	})
	a.delay = e.wait(durOf(rc), k.at, k.at)
	if rc.Ev.Errno != 0 {
		a.act, a.errno = doFail, unix.Errno(rc.Ev.Errno)
		return a
	}
	if k.l == nil {
		return nil
	}
	var flags int64
	if k.name == "accept4" {
		flags = k.arg(3)
	}
	ph, err := e.socketPlaceholder(flags&unix.SOCK_NONBLOCK != 0)
	if err != nil {
		return e.diverge(k, rc, rc.String(), fmt.Sprintf("%s(%d) (no placeholder: %v)", k.name, lfd, err))
	}
	a.rec.Resource = rc.Made.String()
	a.writes = addrOut(k.tid, k.args[1], k.args[2], rc.Ev.Payload)
	a.act, a.install, a.newfd, a.cloexec = doInstall, ph, -1, flags&unix.SOCK_CLOEXEC != 0
	res := rc.Made
	a.after = func(fd int64) {
		if fd >= 0 {
			e.fds[int(fd)] = &fdEntry{res: res, ph: ph}
			e.servedRes[res] = true
		}
	}
	return a
}

// addrOut writes a sockaddr into the program's (addr, *addrlen) pair as the kernel does:
// truncated to the buffer, the length set to the full size.
func addrOut(tid int, addr, lenPtr uint64, sa []byte) []memWrite {
	if addr == 0 || lenPtr == 0 {
		return nil
	}
	var lb [4]byte
	if err := sandbox.ReadMemory(tid, lenPtr, lb[:]); err != nil {
		return nil
	}
	n := min(int(le32(lb[:])), len(sa))
	return []memWrite{{addr: addr, data: sa[:n]}, {addr: lenPtr, data: put32(uint32(len(sa)))}}
}

// serveName answers getsockname and getpeername on a served socket with the addresses
// production had.
func (e *engine) serveName(k *call) *answer {
	ent := e.entry(k)
	if ent == nil || ent.inherited {
		return nil
	}
	res := ent.res
	a := &answer{act: doReturn, rec: Record{Kind: Served, Resource: res.String()}}
	var sa []byte
	if k.fam == recording.PeerName {
		sa = res.Peer
		if sa == nil {
			a.act, a.errno = doFail, unix.ENOTCONN
			return a
		}
	} else {
		sa = res.Local
		if sa == nil {
			sa = unspecified(res.Peer)
		}
	}
	a.writes = addrOut(k.tid, k.args[1], k.args[2], sa)
	return a
}

// unspecified is the any-address of the peer's family (0.0.0.0:0), for a local address
// the recording does not have.
func unspecified(peer []byte) []byte {
	if len(peer) >= 2 && le16(peer) == unix.AF_INET6 {
		b := make([]byte, 28)
		b[0] = unix.AF_INET6
		return b
	}
	b := make([]byte, 16)
	b[0] = unix.AF_INET
	return b
}

func le16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }

// serveSockopt: on a served socket, SO_ERROR reads 0 (the connection production made is
// there), the type is a stream, and options set are accepted and remembered (receive
// timeouts feed the timeout model) but never reach a real socket.
func (e *engine) serveSockopt(k *call, tweaks []*tweak.Tweak) *answer {
	ent := e.entry(k)
	if ent == nil || ent.inherited {
		return nil
	}
	a := &answer{act: doReturn, rec: Record{Kind: Served, Resource: ent.res.String()}}
	switch k.name {
	case "getsockopt":
		level, opt := k.arg(1), k.arg(2)
		if level != unix.SOL_SOCKET {
			return nil
		}
		var v uint32
		switch opt {
		case unix.SO_ERROR:
		case unix.SO_TYPE:
			v = unix.SOCK_STREAM
		default:
			return nil
		}
		a.writes = []memWrite{{addr: k.args[3], data: put32(v)}, {addr: k.args[4], data: put32(4)}}
	case "setsockopt":
		level, opt := k.arg(1), k.arg(2)
		if level != unix.SOL_SOCKET || opt != unix.SO_RCVTIMEO || k.args[4] < 16 {
			break
		}
		var tv [16]byte
		if err := sandbox.ReadMemory(k.tid, k.args[3], tv[:]); err != nil {
			a.act, a.errno = doFail, unix.EFAULT
			return a
		}
		d := time.Duration(int64(le64(tv[:])))*time.Second + time.Duration(int64(le64(tv[8:])))*time.Microsecond
		if d == 0 {
			d = -1 // no timeout
		}
		for _, t := range tweaks {
			if !t.Timeout.IsZero() {
				nd := t.Timeout.Apply(d)
				a.rec.Kind, a.rec.Tweak = Tweaked, t.Spec
				a.rec.Detail = fmt.Sprintf("SO_RCVTIMEO %s → %s", fmtTimeout(d), fmtTimeout(nd))
				d = nd
			}
		}
		// The socket is a placeholder whose reads the replay answers: the timeout is
		// applied by the replay, against the recorded wait of each read.
		ent.rcvTimeout = d
	}
	return a
}

func fmtTimeout(d time.Duration) string {
	if d < 0 {
		return "infinite"
	}
	return d.String()
}

func durOf(c *recording.Call) time.Duration { return time.Duration(c.Ev.DurNs) }
