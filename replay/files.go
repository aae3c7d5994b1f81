package replay

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kprobe/kprobe/replay/recording"
	"github.com/kprobe/kprobe/replay/sandbox"
)

// nativePath says which opens always run natively, recorded or not: what the dynamic
// loader maps (shared objects and its cache: their bytes are mapped, not read, so only
// this machine's copies can work), and kernel state files that describe this machine,
// not production (/proc, /sys, devices other than the random ones).
func nativePath(path string) bool {
	base := filepath.Base(path)
	switch {
	case strings.HasPrefix(path, "/proc/"), strings.HasPrefix(path, "/sys/"):
		return true
	case strings.HasPrefix(path, "/dev/"):
		return path != "/dev/urandom" && path != "/dev/random"
	case base == "ld.so.cache" || base == "ld.so.preload":
		return true
	case strings.HasSuffix(base, ".so") || strings.Contains(base, ".so."):
		return true
	}
	return false
}

func (e *engine) serveOpen(k *call) *answer {
	var pathArg uint64
	var flags int64
	switch k.name {
	case "openat":
		pathArg, flags = k.args[1], k.arg(2)
	case "open":
		pathArg, flags = k.args[0], k.arg(1)
	case "creat":
		pathArg, flags = k.args[0], unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC
	}
	path, err := sandbox.ReadString(k.tid, pathArg, unix.PathMax)
	if err != nil {
		return nil // the kernel will say EFAULT or ENAMETOOLONG itself
	}
	if k.l != nil && !k.l.Valid(k.c.ID) {
		return nil
	}
	if nativePath(path) || flags&(unix.O_DIRECTORY|unix.O_PATH) != 0 {
		return nil
	}
	path = e.recordedPath(path)
	list := e.rec.Opens[path]
	i := e.cur.opens[path]
	if i >= len(list) {
		// Not in the recording (or opened more often than in production): the program's
		// own business, as long as what it does with the fd matches.
		return &answer{act: doContinue, rec: Record{Kind: Native, Resource: "file " + path, Detail: "not in the recording"}}
	}
	rc := list[i]
	e.cur.opens[path] = i + 1
	a := &answer{rec: Record{Kind: Served, LogIndex: rc.Index, Resource: "file " + path, RecordedNs: int64(rc.Ev.DurNs)}}
	a.consume(func() { e.cur.opens[path] = i })
	if rc.Ev.Errno != 0 {
		a.act, a.errno = doFail, unix.Errno(rc.Ev.Errno)
		return a
	}
	if k.l == nil {
		// Only a notification can install an fd; opens are never traced.
		e.cur.opens[path] = i
		return nil
	}
	ph, at, err := e.filePlaceholder(rc.Res)
	if err != nil {
		e.log.Warn("placeholder for a served file", "path", path, "err", err)
		e.cur.opens[path] = i
		return nil
	}
	a.act, a.install, a.newfd, a.cloexec = doInstall, ph, -1, flags&unix.O_CLOEXEC != 0
	res := rc.Res
	a.after = func(fd int64) {
		e.fds[int(fd)] = &fdEntry{res: res, ph: ph, phFD: int(ph.Fd()), at: at}
		e.servedRes[res] = true
	}
	return a
}

// recordedPath is the path as the recording has it: the same string, or else the one
// recorded path that names the same file from another directory (production ran
// "rates.txt" in /srv/app, the replay passes /home/sre/incident/rates.txt): the two
// agree on their last components. Several candidates are no match.
func (e *engine) recordedPath(path string) string {
	if _, ok := e.rec.Opens[path]; ok {
		return path
	}
	clean := filepath.Clean(path)
	found := ""
	for rp := range e.rec.Opens {
		rc := filepath.Clean(rp)
		if rc == clean || pathSuffix(clean, rc) || pathSuffix(rc, clean) {
			if found != "" {
				return path // ambiguous
			}
			found = rp
		}
	}
	if found == "" {
		return path
	}
	return found
}

// pathSuffix reports whether short is long's last components ("b/c" of "/a/b/c").
func pathSuffix(long, short string) bool {
	return !filepath.IsAbs(short) && strings.HasSuffix(long, "/"+short)
}

// filePlaceholder is a memfd holding the bytes production read from the file, at the
// offsets it read them: fstat then sees production's size for a file read whole, and a
// mapping of it sees production's bytes. at[i] is where res.Input[i]'s bytes sit in it,
// -1 when they are not all there (not written, or overwritten by another read of the
// same range that got other bytes): a read of exactly those bytes there can be left to
// the kernel.
func (e *engine) filePlaceholder(res *recording.Resource) (*os.File, []int64, error) {
	fd, err := unix.MemfdCreate("replay:"+filepath.Base(res.Path), unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), res.Path)
	at := make([]int64, len(res.Input))
	pos, positioned := int64(0), false
	for i, c := range res.Input {
		at[i] = -1
		if c.Ev.Errno != 0 || len(c.Ev.Payload) == 0 {
			continue
		}
		off := pos
		if c.Ev.Syscall == "pread64" || c.Ev.Syscall == "preadv" || c.Ev.Syscall == "preadv2" {
			off, positioned = c.Arg(3), true
		} else {
			pos += int64(len(c.Ev.Payload))
		}
		if off >= 0 && off+int64(len(c.Ev.Payload)) <= 1<<30 {
			if _, err := f.WriteAt(c.Ev.Payload, off); err == nil {
				at[i] = off
			}
		}
	}
	if positioned {
		// Positioned reads may cover the same range twice with other bytes: keep only
		// the placements that survived.
		var buf []byte
		for i, c := range res.Input {
			if at[i] < 0 {
				continue
			}
			buf = slices.Grow(buf[:0], len(c.Ev.Payload))[:len(c.Ev.Payload)]
			if n, err := f.ReadAt(buf, at[i]); n != len(buf) || err != nil || !bytes.Equal(buf, c.Ev.Payload) {
				at[i] = -1
			}
		}
	}
	e.phs = append(e.phs, f)
	return f, at, nil
}

// inPlace reports whether the program's read k, asking for the n bytes at offset off of
// record i, would read exactly those bytes from the placeholder if the kernel ran it:
// the placeholder is the program's open file (it shares the file position), and a plain
// read starts where the program's position is.
func (ent *fdEntry) inPlace(k *call, i, off int) bool {
	if ent.ph == nil || i >= len(ent.at) || ent.at[i] < 0 {
		return false
	}
	want := ent.at[i] + int64(off)
	switch k.name {
	case "read":
		pos, _, e := unix.RawSyscall(unix.SYS_LSEEK, uintptr(ent.phFD), 0, unix.SEEK_CUR)
		return e == 0 && int64(pos) == want
	case "pread64":
		return int64(k.args[3]) == want
	}
	return false
}

// socketPlaceholder is one end of a stream socket pair whose other end is closed, with
// the status flags (O_NONBLOCK) the program's socket had.
func (e *engine) socketPlaceholder(nonblock bool) (*os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	unix.Close(fds[1])
	if nonblock {
		unix.SetNonblock(fds[0], true)
	}
	f := os.NewFile(uintptr(fds[0]), "replay-socket")
	e.phs = append(e.phs, f)
	return f, nil
}

func (e *engine) serveClose(k *call) *answer {
	fd := int(int32(k.args[0]))
	ent, ok := e.fds[fd]
	if !ok {
		return nil
	}
	delete(e.fds, fd)
	// The placeholder is closed by the kernel as the program asked.
	return &answer{act: doContinue, rec: Record{Kind: Native, Resource: ent.res.String()},
		undo: []func(){func() { e.fds[fd] = ent }}}
}

// serveDup follows the served fds through dup, dup2, dup3 and fcntl(F_DUPFD*): the new fd
// gets the same placeholder, installed by the replay so that it knows the number.
func (e *engine) serveDup(k *call) *answer {
	old := int(int32(k.args[0]))
	ent := e.fds[old]
	target, cloexec := -1, false
	switch k.name {
	case "dup2", "dup3":
		target = int(int32(k.args[1]))
		cloexec = k.name == "dup3" && k.args[2]&unix.O_CLOEXEC != 0
		if ent == nil {
			if prev, ok := e.fds[target]; ok {
				// A native fd replaces a served one.
				delete(e.fds, target)
				return &answer{act: doContinue, undo: []func(){func() { e.fds[target] = prev }}}
			}
			return nil
		}
		if target == old && k.name == "dup2" {
			return &answer{act: doReturn, val: int64(old), rec: Record{Kind: Served, Resource: ent.res.String()}}
		}
	case "fcntl":
		cmd := k.arg(1)
		if ent == nil || (cmd != unix.F_DUPFD && cmd != unix.F_DUPFD_CLOEXEC) {
			return nil
		}
		target = lowestFreeFD(k.tid, int(k.arg(2)))
		cloexec = cmd == unix.F_DUPFD_CLOEXEC
	}
	if ent == nil || ent.ph == nil || k.l == nil {
		return nil
	}
	a := &answer{act: doInstall, install: ent.ph, newfd: target, cloexec: cloexec, rec: Record{Kind: Served, Resource: ent.res.String()}}
	a.after = func(fd int64) { e.fds[int(fd)] = ent }
	return a
}

// lowestFreeFD finds the lowest fd ≥ min not open in the thread's process.
func lowestFreeFD(tid, min int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", tid))
	if err != nil {
		return min
	}
	used := map[int]bool{}
	for _, d := range ents {
		var n int
		if _, err := fmt.Sscan(d.Name(), &n); err == nil {
			used[n] = true
		}
	}
	for fd := min; ; fd++ {
		if !used[fd] {
			return fd
		}
	}
}

// fdFlags reads an fd's status flags (O_NONBLOCK, O_CLOEXEC) from /proc.
func fdFlags(tid, fd int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", tid, fd))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "flags:"); ok {
			var f int64
			fmt.Sscanf(strings.TrimSpace(v), "%o", &f)
			return f
		}
	}
	return 0
}
