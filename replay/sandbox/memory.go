package sandbox

import (
	"bytes"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ReadMemory copies len(buf) bytes at addr in thread tid's address space into buf.
func ReadMemory(tid int, addr uint64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	n, err := processVM(unix.SYS_PROCESS_VM_READV, tid, addr, buf)
	if err != nil {
		return fmt.Errorf("reading %d bytes at %#x in thread %d: %w", len(buf), addr, tid, err)
	}
	if n != len(buf) {
		return fmt.Errorf("reading %d bytes at %#x in thread %d: short read (%d): %w", len(buf), addr, tid, n, unix.EFAULT)
	}
	return nil
}

// WriteMemory copies buf to addr in thread tid's address space.
func WriteMemory(tid int, addr uint64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	n, err := processVM(unix.SYS_PROCESS_VM_WRITEV, tid, addr, buf)
	if err != nil {
		return fmt.Errorf("writing %d bytes at %#x in thread %d: %w", len(buf), addr, tid, err)
	}
	if n != len(buf) {
		return fmt.Errorf("writing %d bytes at %#x in thread %d: short write (%d): %w", len(buf), addr, tid, n, unix.EFAULT)
	}
	return nil
}

// processVM copies between buf and the thread's memory with one iovec each side. It is
// a raw syscall: it does not block (the target's pages are faulted in by the kernel, not
// waited for), and the scheduler's bookkeeping would cost more than the copy.
func processVM(nr uintptr, tid int, addr uint64, buf []byte) (int, error) {
	local := unix.Iovec{Base: &buf[0], Len: uint64(len(buf))}
	remote := unix.RemoteIovec{Base: uintptr(addr), Len: len(buf)}
	n, _, e := unix.RawSyscall6(nr, uintptr(tid), uintptr(unsafe.Pointer(&local)), 1, uintptr(unsafe.Pointer(&remote)), 1, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// WriteVector scatters buf over the thread's iovec array at iov (iovcnt entries), as
// readv would: it returns how many bytes fit.
func WriteVector(tid int, iov uint64, iovcnt int, buf []byte) (int, error) {
	iovs, err := ReadIovecs(tid, iov, iovcnt)
	if err != nil {
		return 0, err
	}
	done := 0
	for _, v := range iovs {
		if done == len(buf) {
			break
		}
		n := min(int(v.Len), len(buf)-done)
		if err := WriteMemory(tid, v.Base, buf[done:done+n]); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// ReadVector gathers up to limit bytes from the thread's iovec array, as writev would
// send them.
func ReadVector(tid int, iov uint64, iovcnt int, limit int) ([]byte, error) {
	iovs, err := ReadIovecs(tid, iov, iovcnt)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, v := range iovs {
		n := min(int(v.Len), limit-len(out))
		if n <= 0 {
			break
		}
		start := len(out)
		out = append(out, make([]byte, n)...)
		if err := ReadMemory(tid, v.Base, out[start:]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// RemoteIovec is one struct iovec in the target's memory.
type RemoteIovec struct {
	Base uint64
	Len  uint64
}

// maxIovecs is the kernel's UIO_MAXIOV.
const maxIovecs = 1024

// ReadIovecs reads an iovec array from the thread's memory.
func ReadIovecs(tid int, addr uint64, n int) ([]RemoteIovec, error) {
	if n < 0 || n > maxIovecs {
		return nil, fmt.Errorf("iovec count %d: %w", n, unix.EINVAL)
	}
	if n == 0 {
		return nil, nil
	}
	iovs := make([]RemoteIovec, n)
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&iovs[0])), n*int(unsafe.Sizeof(RemoteIovec{})))
	if err := ReadMemory(tid, addr, raw); err != nil {
		return nil, err
	}
	return iovs, nil
}

// ReadString reads a NUL-terminated string of at most max bytes at addr. It reads in
// page-bounded pieces so that a string ending just before an unmapped page is still read.
func ReadString(tid int, addr uint64, max int) (string, error) {
	var out []byte
	for len(out) < max {
		n := 4096 - int(addr%4096)
		n = min(n, max-len(out))
		chunk := make([]byte, n)
		if err := ReadMemory(tid, addr, chunk); err != nil {
			return "", err
		}
		if i := bytes.IndexByte(chunk, 0); i >= 0 {
			return string(append(out, chunk[:i]...)), nil
		}
		out = append(out, chunk...)
		addr += uint64(n)
	}
	return "", fmt.Errorf("string at %#x in thread %d longer than %d bytes: %w", addr, tid, max, unix.ENAMETOOLONG)
}
