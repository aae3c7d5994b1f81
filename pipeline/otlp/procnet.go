package otlp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// This file finds which local process owns one end of a TCP connection, as ss -p does:
// the socket's inode from /proc/net/tcp{,6}, then the process whose fd links to it.

// socketInode returns the inode of the TCP socket whose local end is local and remote
// end is remote, read from the tables under procRoot/net.
func socketInode(procRoot string, local, remote netip.AddrPort) (uint64, error) {
	files := []string{"tcp", "tcp6"}
	if local.Addr().Is6() && !local.Addr().Is4In6() {
		files = []string{"tcp6"}
	}
	for _, name := range files {
		f, err := os.Open(filepath.Join(procRoot, "net", name))
		if err != nil {
			continue
		}
		ino, err := findInode(f, local, remote)
		f.Close()
		if err == nil {
			return ino, nil
		}
	}
	return 0, fmt.Errorf("no socket %v -> %v in %s/net/tcp{,6}", local, remote, procRoot)
}

var errNoSocket = fmt.Errorf("socket not found")

// findInode scans one /proc/net/tcp-format table.
func findInode(r io.Reader, local, remote netip.AddrPort) (uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 4096)
	first := true
	for sc.Scan() {
		if first { // header
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		l, err := parseProcAddr(f[1])
		if err != nil || !sameEnd(l, local) {
			continue
		}
		rm, err := parseProcAddr(f[2])
		if err != nil || !sameEnd(rm, remote) {
			continue
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil || ino == 0 {
			continue
		}
		return ino, nil
	}
	return 0, errNoSocket
}

func sameEnd(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap() == b.Addr().Unmap()
}

// parseProcAddr decodes "0100007F:1F90" (IPv4) or 32 hex digits of IPv6 and a port: the
// address is written as 32-bit words in the kernel's (little-endian) order.
func parseProcAddr(s string) (netip.AddrPort, error) {
	host, port, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", s)
	}
	raw, err := hex.DecodeString(host)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	var b [16]byte
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(b[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	var a netip.Addr
	if len(raw) == 4 {
		a = netip.AddrFrom4([4]byte(b[:4]))
	} else {
		a = netip.AddrFrom16(b)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

// socketOwner returns a process holding the socket inode open (the lowest pid when it is
// shared, e.g. across a fork).
func socketOwner(procRoot string, inode uint64) (uint32, error) {
	want := "socket:[" + strconv.FormatUint(inode, 10) + "]"
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", procRoot, err)
	}
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		fdDir := filepath.Join(procRoot, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && link == want {
				return uint32(pid), nil
			}
		}
	}
	return 0, fmt.Errorf("no process holds socket inode %d (is the agent root?)", inode)
}

// procIdentity reads a process's command name and its pid as its own pid namespace sees
// it (the last NSpid field; equal to pid outside containers).
func procIdentity(procRoot string, pid uint32) (comm string, nspid uint32) {
	nspid = pid
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10), "status"))
	if err != nil {
		return "", pid
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch string(k) {
		case "Name":
			comm = string(bytes.TrimSpace(v))
		case "NSpid":
			f := bytes.Fields(v)
			if len(f) > 0 {
				if n, err := strconv.ParseUint(string(f[len(f)-1]), 10, 32); err == nil {
					nspid = uint32(n)
				}
			}
		}
	}
	return comm, nspid
}
