package recording

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/pipeline/event"
	"github.com/kprobe/kprobe/replay/sysno"
)

// Family groups syscalls by what replay does with them.
type Family uint8

const (
	Other    Family = iota
	Input           // read, pread64, readv, preadv, recvfrom, recvmsg
	Output          // write, pwrite64, writev, pwritev, sendto, sendmsg
	Open            // open, openat, creat
	Close           // close
	Socket          // socket
	Connect         // connect
	Accept          // accept, accept4
	Dup             // dup, dup2, dup3, fcntl(F_DUPFD*)
	Poll            // poll, ppoll
	Select          // select, pselect6
	Random          // getrandom
	Sleep           // nanosleep, clock_nanosleep
	SockName        // getsockname
	PeerName        // getpeername
)

var families = map[string]Family{
	"read": Input, "pread64": Input, "readv": Input, "preadv": Input, "preadv2": Input, "recvfrom": Input, "recvmsg": Input,
	"write": Output, "pwrite64": Output, "writev": Output, "pwritev": Output, "pwritev2": Output, "sendto": Output, "sendmsg": Output,
	"open": Open, "openat": Open, "creat": Open,
	"close":   Close,
	"socket":  Socket,
	"connect": Connect, "accept": Accept, "accept4": Accept,
	"dup": Dup, "dup2": Dup, "dup3": Dup, "fcntl": Dup,
	"poll": Poll, "ppoll": Poll, "select": Select, "pselect6": Select,
	"getrandom": Random, "nanosleep": Sleep, "clock_nanosleep": Sleep,
	"getsockname": SockName, "getpeername": PeerName,
}

// FamilyOf returns the family of a syscall name.
func FamilyOf(name string) Family { return families[name] }

// Kind is what a resource is.
type Kind uint8

const (
	File      Kind = iota + 1
	Sock           // a socket the program created, connected or accepted
	Inherited      // an fd the program had before the recording saw it opened (stdin, ...)
)

// Resource is one file or socket of the recorded process, across its fds.
type Resource struct {
	ID     int
	Kind   Kind
	FD     int    // the fd number it had when it appeared
	Path   string // files: the path opened
	Flags  int64  // files: the open flags
	Peer   []byte // sockets: the raw sockaddr connected to or accepted from
	Local  []byte // sockets: the address getsockname returned, when recorded
	Opened *Call  // the call that created it; nil for inherited fds

	Input  []*Call // reads, in order
	Output []*Call // writes, in order

	name string // String, once Build is done
}

// String names the resource as divergence lines and the trace show it.
func (r *Resource) String() string {
	if r.name != "" {
		return r.name
	}
	return r.describe()
}

func (r *Resource) describe() string {
	switch r.Kind {
	case File:
		return "file " + r.Path
	case Sock:
		if r.Peer != nil {
			return "socket " + SockaddrString(r.Peer)
		}
		return fmt.Sprintf("socket (fd %d)", r.FD)
	}
	return fmt.Sprintf("inherited fd %d", r.FD)
}

// Call is one recorded syscall.
type Call struct {
	Index  int // 1-based position in the recording, time order
	Ev     *event.Event
	Nr     int
	Family Family
	Res    *Resource // what its fd argument named when it ran (open: what it opened)
	Made   *Resource // accept: the connection it returned
	// Fds maps the fds of a poll or select to what they named.
	Fds map[int]*Resource
}

// Result is the call's return value, or -errno.
func (c *Call) Result() int64 {
	if c.Ev.Errno != 0 {
		return -int64(c.Ev.Errno)
	}
	return c.Ev.Bytes
}

// Arg is the raw argument i (0 when not recorded).
func (c *Call) Arg(i int) int64 {
	if i < len(c.Ev.Args) {
		return c.Ev.Args[i]
	}
	return 0
}

// String renders the call as the divergence line shows it.
func (c *Call) String() string {
	e := c.Ev
	var b strings.Builder
	b.WriteString(e.Syscall)
	b.WriteByte('(')
	switch c.Family {
	case Open:
		fmt.Fprintf(&b, "%q", e.Path)
	case Connect:
		fmt.Fprintf(&b, "%d, %s", e.FD, SockaddrString(e.Payload))
	case Input, Output:
		fmt.Fprintf(&b, "%d", e.FD)
		if c.Res != nil {
			fmt.Fprintf(&b, " [%s]", c.Res)
		}
		if c.Family == Output && len(e.Payload) > 0 {
			fmt.Fprintf(&b, ", %s", Quote(e.Payload, 32))
		}
	default:
		if e.FD >= 0 {
			fmt.Fprintf(&b, "%d", e.FD)
		}
	}
	b.WriteString(") = ")
	if e.Errno != 0 {
		b.WriteString("-" + unix.ErrnoName(unix.Errno(e.Errno)))
	} else {
		fmt.Fprintf(&b, "%d", e.Bytes)
	}
	return b.String()
}

// Quote renders bytes as a short Go-quoted string, "…" when cut.
func Quote(p []byte, max int) string {
	if len(p) > max {
		return fmt.Sprintf("%q…", p[:max])
	}
	return fmt.Sprintf("%q", p)
}

// Recording is one process's recorded syscalls, indexed for replay.
type Recording struct {
	PID       uint32
	Calls     []*Call
	Resources []*Resource
	Opens     map[string][]*Call // by path, in order (failed opens included)
	Connects  []*Call
	Accepts   []*Call
	Polls     []*Call // poll, ppoll, select, pselect6
	Randoms   []*Call
	Sleeps    []*Call
	Inherited map[int]*Resource
	Threads   []uint32 // recorded tids in the order they first made a call
	// Skipped counts events of other types or of syscalls replay does not use.
	Skipped int
}

// Build indexes the syscall events of process pid. Events of other processes or types are
// skipped; the order is the kernel's clock at entry.
func Build(events []event.Event, pid uint32) (*Recording, error) {
	r := &Recording{PID: pid, Opens: map[string][]*Call{}, Inherited: map[int]*Resource{}}
	var evs []*event.Event
	for i := range events {
		e := &events[i]
		if e.Type != event.TypeSyscall || e.PID != pid {
			r.Skipped++
			continue
		}
		evs = append(evs, e)
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("no flight-recorder events for pid %d (record it with 'kprobe-agent record --flight-recorder' or 'standalone --flight-recorder')", pid)
	}
	slices.SortStableFunc(evs, func(a, b *event.Event) int {
		switch {
		case a.KtimeNs != b.KtimeNs:
			return cmpU64(a.KtimeNs, b.KtimeNs)
		case a.TID != b.TID:
			return int(a.TID) - int(b.TID)
		}
		return 0
	})
	fds := map[int]*Resource{}
	seenTID := map[uint32]bool{}
	newRes := func(k Kind, fd int, opened *Call) *Resource {
		res := &Resource{ID: len(r.Resources) + 1, Kind: k, FD: fd, Opened: opened}
		r.Resources = append(r.Resources, res)
		return res
	}
	at := func(fd int) *Resource {
		if fd < 0 {
			return nil
		}
		if res, ok := fds[fd]; ok {
			return res
		}
		res := newRes(Inherited, fd, nil)
		fds[fd] = res
		r.Inherited[fd] = res
		return res
	}
	for _, e := range evs {
		nr, ok := sysno.Number(e.Syscall)
		fam := FamilyOf(e.Syscall)
		if !ok || fam == Other {
			r.Skipped++
			continue
		}
		if !seenTID[e.TID] {
			seenTID[e.TID] = true
			r.Threads = append(r.Threads, e.TID)
		}
		c := &Call{Index: len(r.Calls) + 1, Ev: e, Nr: nr, Family: fam}
		r.Calls = append(r.Calls, c)
		ret := c.Result()
		fd := int(e.FD)
		switch fam {
		case Input, Output, Connect, Accept, Dup, SockName, PeerName:
			if fd < 0 {
				continue // a call on no fd failed with EBADF: nothing to tie it to
			}
		}
		switch fam {
		case Input:
			c.Res = at(fd)
			c.Res.Input = append(c.Res.Input, c)
		case Output:
			c.Res = at(fd)
			c.Res.Output = append(c.Res.Output, c)
		case Open:
			r.Opens[e.Path] = append(r.Opens[e.Path], c)
			if ret >= 0 {
				res := newRes(File, int(ret), c)
				res.Path, res.Flags = e.Path, openFlags(c)
				fds[int(ret)] = res
				c.Res = res
			}
		case Socket:
			if ret >= 0 {
				res := newRes(Sock, int(ret), c)
				fds[int(ret)] = res
				c.Res = res
			}
		case Connect:
			c.Res = at(fd)
			if c.Res.Kind == Inherited {
				c.Res.Kind = Sock
			}
			c.Res.Peer = e.Payload
			r.Connects = append(r.Connects, c)
		case Accept:
			c.Res = at(fd) // the listening socket
			r.Accepts = append(r.Accepts, c)
			if ret >= 0 {
				res := newRes(Sock, int(ret), c)
				res.Peer = e.Payload
				fds[int(ret)] = res
				c.Made = res
			}
		case Close:
			c.Res = fds[fd]
			if ret == 0 || (e.Errno != 0 && e.Errno != int32(unix.EBADF)) {
				delete(fds, fd)
			}
		case Dup:
			c.Res = at(fd)
			if ret >= 0 && isDup(c) {
				fds[int(ret)] = c.Res
			}
		case Poll, Select:
			c.Fds = map[int]*Resource{}
			for _, pfd := range polledFDs(c) {
				if res, ok := fds[pfd]; ok {
					c.Fds[pfd] = res
				}
			}
			r.Polls = append(r.Polls, c)
		case Random:
			r.Randoms = append(r.Randoms, c)
		case Sleep:
			r.Sleeps = append(r.Sleeps, c)
		case SockName, PeerName:
			c.Res = at(fd)
			if ret == 0 && fam == SockName {
				c.Res.Local = e.Payload
			}
		}
	}
	for _, res := range r.Resources {
		res.name = res.describe() // served calls name it: once, not per call
	}
	return r, nil
}

func cmpU64(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}

// openFlags returns the flags argument of open, openat or creat.
func openFlags(c *Call) int64 {
	switch c.Ev.Syscall {
	case "openat":
		return c.Arg(2)
	case "creat":
		return unix.O_CREAT | unix.O_WRONLY | unix.O_TRUNC
	}
	return c.Arg(1)
}

// isDup tells fcntl(F_DUPFD*) from the other fcntl commands.
func isDup(c *Call) bool {
	if c.Ev.Syscall != "fcntl" {
		return true
	}
	cmd := c.Arg(1)
	return cmd == unix.F_DUPFD || cmd == unix.F_DUPFD_CLOEXEC
}

// polledFDs lists the fds a poll or select waited on, from its recorded payload (the
// pollfd array, or the three fd_sets).
func polledFDs(c *Call) []int {
	p := c.Ev.Payload
	switch c.Family {
	case Poll:
		var out []int
		for i := 0; i+8 <= len(p); i += 8 {
			out = append(out, int(int32(uint32(p[i])|uint32(p[i+1])<<8|uint32(p[i+2])<<16|uint32(p[i+3])<<24)))
		}
		return out
	case Select:
		// Payload: the recorded (after-call) sets, each in a 128-byte slot; the fds that
		// were asked for are not recorded, so the ready ones stand for them.
		var out []int
		n := min(int(c.Arg(0)), 8*SetSlot)
		for set := 0; set < 3; set++ {
			base := set * SetSlot
			for fd := 0; fd < n && base+fd/8 < len(p); fd++ {
				if p[base+fd/8]&(1<<(fd%8)) != 0 {
					out = append(out, fd)
				}
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return nil
}

// SetSlot is the room each fd_set of a recorded select has in its payload (an fd_set of
// FD_SETSIZE 1024).
const SetSlot = 128
