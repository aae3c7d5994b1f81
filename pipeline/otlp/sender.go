package otlp

import (
	"context"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// sender is what the receiver knows of one connection's peer, found once per connection
// and only when a request needs it (a /proc scan is not free).
type sender struct {
	addr   netip.AddrPort // zero for a unix socket
	local  bool           // on this node: loopback, a local address, or a unix socket
	unix   bool
	lookup func() (pid uint32, err error) // nil when there is nothing to look up

	once  sync.Once
	pid   uint32 // host pid of the sending process, 0 when unknown
	nspid uint32 // the same process's pid in its own pid namespace
	comm  string
	err   error
}

// process resolves (once) and returns the sending process: pid 0 when it cannot be
// known (a remote peer, or the lookup failed: err says why).
func (s *sender) process(procRoot string) (pid, nspid uint32, err error) {
	s.once.Do(func() {
		if s.lookup == nil {
			return
		}
		if s.pid, s.err = s.lookup(); s.err == nil && s.pid != 0 {
			s.comm, s.nspid = procIdentity(procRoot, s.pid)
		}
	})
	return s.pid, s.nspid, s.err
}

// senderConn carries its sender; RemoteAddr returns an address that does too, which is
// how gRPC hands it to a handler (peer.Addr).
type senderConn struct {
	net.Conn
	s *sender
}

type senderAddr struct {
	net.Addr
	s *sender
}

func (c *senderConn) RemoteAddr() net.Addr { return senderAddr{c.Conn.RemoteAddr(), c.s} }

// senderListener wraps accepted connections with what is known of their peer.
type senderListener struct {
	net.Listener
	procRoot string
	locals   func() []netip.Addr
}

func (l *senderListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &senderConn{Conn: c, s: l.senderOf(c)}, nil
}

func (l *senderListener) senderOf(c net.Conn) *sender {
	switch conn := c.(type) {
	case *net.UnixConn:
		s := &sender{local: true, unix: true}
		// SO_PEERCRED is fixed at connect time: read it now, while the fd is ours.
		var pid uint32
		var perr error
		if raw, err := conn.SyscallConn(); err == nil {
			if cerr := raw.Control(func(fd uintptr) {
				cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
				if err != nil {
					perr = err
					return
				}
				pid = uint32(cred.Pid)
			}); cerr != nil {
				perr = cerr
			}
		} else {
			perr = err
		}
		s.lookup = func() (uint32, error) { return pid, perr }
		return s
	case *net.TCPConn:
		remote := conn.RemoteAddr().(*net.TCPAddr).AddrPort()
		local := conn.LocalAddr().(*net.TCPAddr).AddrPort()
		s := &sender{addr: remote}
		ra := remote.Addr().Unmap()
		s.local = ra.IsLoopback() || ra == local.Addr().Unmap()
		if !s.local && l.locals != nil {
			for _, a := range l.locals() {
				if a == ra {
					s.local = true
					break
				}
			}
		}
		if s.local {
			procRoot := l.procRoot
			// The peer's socket has our ends swapped.
			s.lookup = func() (uint32, error) {
				ino, err := socketInode(procRoot, remote, local)
				if err != nil {
					return 0, err
				}
				return socketOwner(procRoot, ino)
			}
		}
		return s
	}
	return &sender{}
}

// localAddrs lists this node's interface addresses (cached for the receiver's life:
// addresses added later are treated as remote peers, which only costs attribution).
func localAddrs() func() []netip.Addr {
	return sync.OnceValue(func() []netip.Addr {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return nil
		}
		var out []netip.Addr
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					out = append(out, ip.Unmap())
				}
			}
		}
		return out
	})
}

type senderKey struct{}

// withSender is http.Server.ConnContext: it carries the connection's sender to handlers.
func withSender(ctx context.Context, c net.Conn) context.Context {
	if sc, ok := c.(*senderConn); ok {
		return context.WithValue(ctx, senderKey{}, sc.s)
	}
	return ctx
}

func senderFromContext(ctx context.Context) *sender {
	s, _ := ctx.Value(senderKey{}).(*sender)
	return s
}

func senderFromAddr(a net.Addr) *sender {
	if sa, ok := a.(senderAddr); ok {
		return sa.s
	}
	return nil
}
