package replay

import (
	"bytes"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/replay/recording"
	"github.com/kprobe/kprobe/replay/sandbox"
	"github.com/kprobe/kprobe/replay/tweak"
)

// fdEntry is one fd of the replayed process that the recording serves.
type fdEntry struct {
	res *recording.Resource
	// ph is the placeholder behind the fd in the program: a memfd holding what was read
	// from a file, or one end of a socket pair whose other end is closed (readable and
	// writable at once, so poll and epoll never wait on it, and it reads as end of file
	// once the replay stops serving). Nil for inherited stdio.
	ph   *os.File
	phFD int
	// at, for a file, is where each recorded read's bytes sit in ph (filePlaceholder).
	at        []int64
	inherited bool
	// rcvTimeout is the SO_RCVTIMEO the program set (tweaks applied); 0 or < 0: none.
	rcvTimeout time.Duration
}

// serve answers k from the recording, or returns nil when the recording has nothing to
// do with it. e.mu is held.
func (e *engine) serve(k *call, tweaks []*tweak.Tweak) *answer {
	switch k.fam {
	case recording.Input:
		return e.serveInput(k)
	case recording.Output:
		return e.serveOutput(k)
	case recording.Open:
		return e.serveOpen(k)
	case recording.Close:
		return e.serveClose(k)
	case recording.Dup:
		return e.serveDup(k)
	case recording.Connect:
		return e.serveConnect(k)
	case recording.Accept:
		return e.serveAccept(k)
	case recording.SockName, recording.PeerName:
		return e.serveName(k)
	case recording.Poll, recording.Select:
		return e.servePoll(k, tweaks)
	case recording.Random:
		return e.serveRandom(k)
	}
	switch k.name {
	case "getsockopt", "setsockopt", "shutdown":
		return e.serveSockopt(k, tweaks)
	case "close_range":
		first, last := int(uint32(k.args[0])), int(uint32(k.args[1]))
		if k.args[2]&unix.CLOSE_RANGE_CLOEXEC == 0 {
			for fd := range e.fds {
				if fd >= first && fd <= last {
					delete(e.fds, fd)
				}
			}
		}
	}
	return nil
}

// entry returns the served fd k names, nil when the fd is the program's own.
func (e *engine) entry(k *call) *fdEntry {
	return e.fds[int(int32(k.args[0]))]
}

// inputLen is how many bytes the program asked for, and where they go.
func (e *engine) inputDest(k *call) (n int, w memWrite, err error) {
	switch k.name {
	case "read", "pread64", "recvfrom":
		return int(min(k.args[2], 1<<30)), memWrite{addr: k.args[1]}, nil
	case "readv", "preadv", "preadv2":
		return iovTotal(k.tid, k.args[1], int(k.args[2])), memWrite{addr: k.args[1], vec: true, vecN: int(k.args[2])}, nil
	case "recvmsg":
		iov, iovlen, err := msgIov(k.tid, k.args[1])
		if err != nil {
			return 0, memWrite{}, err
		}
		return iovTotal(k.tid, iov, iovlen), memWrite{addr: iov, vec: true, vecN: iovlen}, nil
	}
	return 0, memWrite{}, fmt.Errorf("not an input call")
}

func iovTotal(tid int, iov uint64, n int) int {
	v, err := sandbox.ReadIovecs(tid, iov, n)
	if err != nil {
		return 0
	}
	t := 0
	for _, x := range v {
		t += int(min(x.Len, 1<<30))
	}
	return t
}

// msgIov reads msg_iov and msg_iovlen of a struct msghdr.
func msgIov(tid int, msg uint64) (uint64, int, error) {
	var b [56]byte
	if err := sandbox.ReadMemory(tid, msg, b[:]); err != nil {
		return 0, 0, err
	}
	return le64(b[16:]), int(le64(b[24:])), nil
}

func (e *engine) serveInput(k *call) *answer {
	ent := e.entry(k)
	if ent == nil {
		return nil
	}
	res := ent.res
	if ent.inherited && len(res.Input) == 0 {
		return nil // stdin the recording never read: the program's own
	}
	p := e.cur.in[res]
	i0, off0 := p.i, p.off
	undo := func() { p.restore(i0, off0) }
	rc, wait := nextInput(res, p)
	count, dest, err := e.inputDest(k)
	if err != nil {
		undo()
		return &answer{act: doFail, errno: unix.EFAULT, rec: Record{Kind: Served, Resource: res.String()}}
	}
	if rc == nil {
		undo()
		last := "nothing more"
		if n := len(res.Input); n > 0 && res.Input[n-1].Ev.Errno == int32(unix.EAGAIN) {
			last = "nothing more (production was still waiting when the recording ended)"
		}
		return e.diverge(k, nil, fmt.Sprintf("%s on %s", last, res), fmt.Sprintf("%s(%d, %d)", k.name, k.arg(0), count))
	}
	a := k.answer(Record{Kind: Served, LogIndex: rc.Index, Resource: res.String(), RecordedNs: int64(rc.Ev.DurNs)})
	a.moved(p, i0, off0)
	if p.off == 0 {
		if p.heldSince.IsZero() {
			p.heldSince = k.at
		}
		a.posHeld = p.heldSince
		a.delay = e.wait(wait, p.heldSince, k.at)
		if t := ent.rcvTimeout; t > 0 && e.tw.Timing.Scale(wait)-k.at.Sub(p.heldSince) > t {
			// The data came later than the socket's receive timeout: the read times out,
			// and the next one waits for what is left.
			undo()
			a.pos = nil
			a.delay, a.act, a.errno = t, doFail, unix.EAGAIN
			a.rec.Detail = fmt.Sprintf("SO_RCVTIMEO %s expired before the recorded data (%s)", t, e.tw.Timing.Scale(wait))
			return a
		}
	}
	switch {
	case rc.Ev.Errno != 0:
		p.i, p.off, p.heldSince = p.i+1, 0, time.Time{}
		a.act, a.errno = doFail, unix.Errno(rc.Ev.Errno)
		return a
	case rc.Ev.Bytes == 0:
		p.i, p.off, p.heldSince = p.i+1, 0, time.Time{}
		a.act, a.val = doReturn, 0
		return a
	}
	kept := rc.Ev.Payload
	if p.off >= len(kept) {
		undo()
		return e.diverge(k, rc, fmt.Sprintf("%s with %d of %d bytes kept (the recorder truncated it: raise --payload-bytes)", rc, len(kept), rc.Ev.Bytes),
			fmt.Sprintf("%s(%d, %d)", k.name, k.arg(0), count))
	}
	n := min(count, len(kept)-p.off, int(rc.Ev.Bytes)-p.off)
	a.act, a.val = doReturn, int64(n)
	if n == count && ent.inPlace(k, p.i, p.off) {
		// The kernel copies the recorded bytes from the placeholder, in the program's
		// own context: cheaper than writing them into it from here (process_vm_writev
		// costs about 2 µs of the 10 µs a served call takes), and the same result.
		a.act = doKernel
	} else {
		dest.data = kept[p.off : p.off+n]
		a.writes = append(a.writes, dest)
		a.writes = append(a.writes, e.inputAddrs(k)...)
	}
	p.off += n
	if p.off >= int(rc.Ev.Bytes) {
		p.i, p.off, p.heldSince = p.i+1, 0, time.Time{}
	}
	return a
}

// inputAddrs zeroes the source-address lengths a connected socket's recvfrom and recvmsg
// report (the kernel reports none for a stream socket).
func (e *engine) inputAddrs(k *call) []memWrite {
	var zero4 = []byte{0, 0, 0, 0}
	switch k.name {
	case "recvfrom":
		if k.args[4] != 0 && k.args[5] != 0 {
			return []memWrite{{addr: k.args[5], data: zero4}}
		}
	case "recvmsg":
		// msg_namelen (+8), msg_controllen (+40, 8 bytes), msg_flags (+48).
		return []memWrite{{addr: k.args[1] + 8, data: zero4}, {addr: k.args[1] + 40, data: make([]byte, 8)}, {addr: k.args[1] + 48, data: zero4}}
	}
	return nil
}

// wait is how long a served call is held: the recorded wait under timing=, less what a
// restarted call already waited.
func (e *engine) wait(recorded time.Duration, since, now time.Time) time.Duration {
	d := e.tw.Timing.Scale(recorded) - now.Sub(since)
	if d < minWait {
		return 0
	}
	return d
}

// outputSrc reads what the program is writing, up to limit bytes.
func outputSrc(k *call, limit int) (total int, data []byte, err error) {
	switch k.name {
	case "write", "pwrite64", "sendto":
		total = int(min(k.args[2], 1<<30))
		data = make([]byte, min(total, limit))
		err = sandbox.ReadMemory(k.tid, k.args[1], data)
		return total, data, err
	case "writev", "pwritev", "pwritev2":
		total = iovTotal(k.tid, k.args[1], int(k.args[2]))
		data, err = sandbox.ReadVector(k.tid, k.args[1], int(k.args[2]), limit)
		return total, data, err
	case "sendmsg":
		iov, n, err := msgIov(k.tid, k.args[1])
		if err != nil {
			return 0, nil, err
		}
		total = iovTotal(k.tid, iov, n)
		data, err = sandbox.ReadVector(k.tid, iov, n, limit)
		return total, data, err
	}
	return 0, nil, fmt.Errorf("not an output call")
}

// serveOutput compares what the program writes with what production wrote, as a byte
// stream (the program may cut it into other calls), and answers for the served sockets
// and files: nothing reaches them. Writes to inherited stdio run as well.
func (e *engine) serveOutput(k *call) *answer {
	ent := e.entry(k)
	if ent == nil {
		return nil
	}
	res := ent.res
	p := e.cur.out[res]
	i0, off0 := p.i, p.off
	undo := func() { p.restore(i0, off0) }
	if p.i >= len(res.Output) {
		if ent.inherited && len(res.Output) == 0 {
			return nil // stdio the recording never saw written
		}
		total, data, _ := outputSrc(k, 32)
		return e.diverge(k, nil, fmt.Sprintf("nothing more written to %s", res),
			fmt.Sprintf("%s(%d, %s, %d)", k.name, k.arg(0), recording.Quote(data, 32), total))
	}
	rc := res.Output[p.i]
	a := k.answer(Record{Kind: Served, LogIndex: rc.Index, Resource: res.String(), RecordedNs: int64(rc.Ev.DurNs)})
	a.moved(p, i0, off0)
	if rc.Ev.Errno != 0 && p.off == 0 {
		p.i++
		if ent.inherited {
			a.act = doContinue
			return a
		}
		a.act, a.errno = doFail, unix.Errno(rc.Ev.Errno)
		return a
	}
	// Served: the call takes what is left of the current recorded write (production's
	// partial writes come back as they were). Inherited: the kernel writes it all, so
	// the comparison runs over as many recorded writes as it spans.
	remaining := int(rc.Ev.Bytes) - p.off
	total, _, err := outputSrc(k, 0)
	if err != nil {
		undo()
		return &answer{act: doFail, errno: unix.EFAULT, rec: a.rec}
	}
	n := min(total, remaining)
	if ent.inherited {
		n = total
	}
	_, data, err := outputSrc(k, n)
	if err != nil {
		undo()
		return &answer{act: doFail, errno: unix.EFAULT, rec: a.rec}
	}
	// Compare against the recorded bytes kept, record by record.
	i, off, pos := p.i, p.off, 0
	for pos < n {
		if i >= len(res.Output) {
			undo()
			return e.diverge(k, nil, fmt.Sprintf("%d bytes fewer written to %s", n-pos, res),
				fmt.Sprintf("%s(%d, %s, %d)", k.name, k.arg(0), recording.Quote(data, 32), total))
		}
		r := res.Output[i]
		if r.Ev.Errno != 0 {
			i, off = i+1, 0
			continue
		}
		step := min(int(r.Ev.Bytes)-off, n-pos)
		kept := r.Ev.Payload
		if off < len(kept) {
			m := min(step, len(kept)-off)
			if !bytes.Equal(kept[off:off+m], data[pos:pos+m]) {
				undo()
				_, preview, _ := outputSrc(k, 32)
				return e.diverge(k, r, r.String(), fmt.Sprintf("%s(%d, %s, %d)", k.name, k.arg(0), recording.Quote(preview, 32), total))
			}
		}
		pos += step
		off += step
		if off >= int(r.Ev.Bytes) {
			i, off = i+1, 0
		}
	}
	p.i, p.off = i, off
	if ent.inherited {
		a.act = doContinue
		a.rec.Kind = Native
		return a
	}
	if p.off == 0 {
		a.delay = e.wait(time.Duration(rc.Ev.DurNs), k.at, k.at)
	}
	a.act, a.val = doReturn, int64(n)
	return a
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func put32(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
