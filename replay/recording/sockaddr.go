package recording

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SockaddrString renders a raw struct sockaddr for people and for matching: "10.0.0.7:7000",
// "[::1]:80", "unix:/run/x.sock", "unix:@abstract", or "family N" for others.
func SockaddrString(b []byte) string {
	if len(b) < 2 {
		return "none"
	}
	fam := binary.LittleEndian.Uint16(b)
	switch fam {
	case unix.AF_INET, unix.AF_INET6:
		if ap, ok := SockaddrAddrPort(b); ok {
			return ap.String()
		}
	case unix.AF_UNIX:
		p := b[2:]
		if len(p) > 0 && p[0] == 0 {
			return "unix:@" + strings.TrimRight(string(p[1:]), "\x00")
		}
		if i := strings.IndexByte(string(p), 0); i >= 0 {
			p = p[:i]
		}
		return "unix:" + string(p)
	case unix.AF_UNSPEC:
		return "unspec"
	}
	return "family " + strconv.Itoa(int(fam))
}

// SockaddrAddrPort decodes an AF_INET or AF_INET6 sockaddr.
func SockaddrAddrPort(b []byte) (netip.AddrPort, bool) {
	if len(b) < 2 {
		return netip.AddrPort{}, false
	}
	switch binary.LittleEndian.Uint16(b) {
	case unix.AF_INET:
		if len(b) < 8 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:])), true
	case unix.AF_INET6:
		if len(b) < 24 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), binary.BigEndian.Uint16(b[2:])), true
	}
	return netip.AddrPort{}, false
}

// IsNetwork reports whether the sockaddr leaves the machine's own namespace (inet), as
// opposed to a unix socket.
func IsNetwork(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	f := binary.LittleEndian.Uint16(b)
	return f == unix.AF_INET || f == unix.AF_INET6
}
