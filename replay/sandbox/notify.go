package sandbox

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Call is one syscall a thread of the target made, stopped in the supervisor
// (struct seccomp_notif). The thread waits until it is answered with exactly one of
// Return, Fail, Continue or Install.
type Call struct {
	ID   uint64
	TID  int // the calling thread, in the supervisor's pid namespace
	Nr   int
	Args [6]uint64
}

// notif is struct seccomp_notif (with struct seccomp_data inline).
type notif struct {
	id    uint64
	pid   uint32
	flags uint32
	nr    int32
	arch  uint32
	ip    uint64
	args  [6]uint64
}

// Arg returns argument i as a signed integer (fds, counts, timeouts).
func (c *Call) Arg(i int) int64 { return int64(c.Args[i]) }

// notifResp is struct seccomp_notif_resp.
type notifResp struct {
	id    uint64
	val   int64
	error int32
	flags uint32
}

// notifAddFD is struct seccomp_notif_addfd.
type notifAddFD struct {
	id         uint64
	flags      uint32
	srcfd      uint32
	newfd      uint32
	newfdFlags uint32
}

var (
	// The kernel's sizes (SECCOMP_GET_NOTIF_SIZES on x86_64): a layout change fails the build.
	_ [80 - unsafe.Sizeof(notif{})]byte
	_ [unsafe.Sizeof(notif{}) - 80]byte
	_ [24 - unsafe.Sizeof(notifResp{})]byte
	_ [unsafe.Sizeof(notifResp{}) - 24]byte
	_ [24 - unsafe.Sizeof(notifAddFD{})]byte
	_ [unsafe.Sizeof(notifAddFD{}) - 24]byte
)

// ErrGone is returned when the call no longer waits for an answer: its thread was
// interrupted by a signal (the kernel restarts the syscall and delivers it again, as a new
// Call) or died. Whatever the answer consumed must be given back.
var ErrGone = errors.New("call no longer pending")

// Listener is the supervisor's end of the seccomp filter (the user-notification fd).
type Listener struct {
	fd int
}

// ioctlRaw is for the requests that never block (send, id_valid): no scheduler
// bookkeeping around them, which on the served path costs more than the call.
func ioctlRaw(fd int, req uint, arg unsafe.Pointer) error {
	_, _, e := unix.RawSyscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

func ioctl(fd int, req uint, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

// syncWakeUp asks the kernel to wake the supervisor on the CPU of the thread that stops
// (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP): the stopped thread and the supervisor then
// ping-pong on one CPU instead of waking an idle one, which is most of the cost of a stop.
func (l *Listener) syncWakeUp() error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(l.fd), uintptr(unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS), unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
	if e != 0 {
		return fmt.Errorf("seccomp notification sync wake-up: %w", e)
	}
	return nil
}

// receive blocks until a thread stops. It returns ErrGone when the call it was woken for
// was withdrawn before it could be read (a signal, or the last thread exiting).
func (l *Listener) receive(c *Call) error {
	var n notif
	for {
		err := ioctl(l.fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(&n))
		switch err {
		case nil:
			*c = Call{ID: n.id, TID: int(n.pid), Nr: int(n.nr), Args: n.args}
			return nil
		case unix.EINTR:
			continue
		case unix.ENOENT:
			return ErrGone
		}
		return fmt.Errorf("receiving a seccomp notification: %w", err)
	}
}

// orphaned waits until a call is pending or the filter has no thread left, and reports
// the latter.
func (l *Listener) orphaned() bool {
	fds := []unix.PollFd{{Fd: int32(l.fd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		return err != nil || fds[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
	}
}

// Valid reports whether the call still waits. Memory read from the thread is only
// trusted, and memory is only written into it, after this says yes: the thread may have
// been interrupted, and its tid reused.
func (l *Listener) Valid(id uint64) bool {
	return ioctlRaw(l.fd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id)) == nil
}

func (l *Listener) send(r *notifResp) error {
	err := ioctlRaw(l.fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(r))
	if err == unix.ENOENT {
		return ErrGone
	}
	if err != nil {
		return fmt.Errorf("answering a seccomp notification: %w", err)
	}
	return nil
}

// Return answers c with a successful result: the syscall is not run.
func (l *Listener) Return(c *Call, val int64) error {
	return l.send(&notifResp{id: c.ID, val: val})
}

// Fail answers c with -errno: the syscall is not run.
func (l *Listener) Fail(c *Call, errno unix.Errno) error {
	return l.send(&notifResp{id: c.ID, error: -int32(errno)})
}

// Continue lets the kernel run c as the thread asked.
func (l *Listener) Continue(c *Call) error {
	return l.send(&notifResp{id: c.ID, flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE})
}

// Install puts a duplicate of the supervisor's fd src into the thread's fd table and
// answers c with its number (SECCOMP_ADDFD_FLAG_SEND: atomically, so the number is never
// leaked when the answer fails). newfd ≥ 0 asks for that number (replacing what is there).
func (l *Listener) Install(c *Call, src int, newfd int, cloexec bool) (int, error) {
	a := notifAddFD{id: c.ID, flags: unix.SECCOMP_ADDFD_FLAG_SEND, srcfd: uint32(src)}
	if newfd >= 0 {
		a.flags |= unix.SECCOMP_ADDFD_FLAG_SETFD
		a.newfd = uint32(newfd)
	}
	if cloexec {
		a.newfdFlags = unix.O_CLOEXEC
	}
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(l.fd), uintptr(unix.SECCOMP_IOCTL_NOTIF_ADDFD), uintptr(unsafe.Pointer(&a)))
	switch e {
	case 0:
		return int(r), nil
	case unix.ENOENT:
		return -1, ErrGone
	}
	return -1, fmt.Errorf("installing an fd in thread %d: %w", c.TID, e)
}

// Replace puts a duplicate of src at fd number target in the thread's table (closing what
// was there) without answering c.
func (l *Listener) Replace(c *Call, src, target int, cloexec bool) error {
	a := notifAddFD{id: c.ID, flags: unix.SECCOMP_ADDFD_FLAG_SETFD, srcfd: uint32(src), newfd: uint32(target)}
	if cloexec {
		a.newfdFlags = unix.O_CLOEXEC
	}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(l.fd), uintptr(unix.SECCOMP_IOCTL_NOTIF_ADDFD), uintptr(unsafe.Pointer(&a)))
	switch e {
	case 0:
		return nil
	case unix.ENOENT:
		return ErrGone
	}
	return fmt.Errorf("replacing fd %d in thread %d: %w", target, c.TID, e)
}

// Close releases the listener: threads still stopped in it get ENOSYS.
func (l *Listener) Close() error { return unix.Close(l.fd) }
