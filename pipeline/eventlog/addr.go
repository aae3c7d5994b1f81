package eventlog

import (
	"net/netip"

	"github.com/kprobe/kprobe/pipeline/event"
)

// Address families, as the addr_family column keeps them.
const (
	familyNone = 0
	familyV4   = 1
	familyV6   = 2
)

func addrFamily(a netip.Addr) uint8 {
	switch {
	case a.Is4():
		return familyV4
	case a.IsValid():
		return familyV6
	}
	return familyNone
}

func addrFamilies(e *event.Event) uint8 {
	return addrFamily(e.SAddr) | addrFamily(e.DAddr)<<2
}

// addr16 is a's 16-byte form (IPv4 mapped); the zone of a scoped IPv6 address is dropped.
func addr16(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{}
	}
	return a.As16()
}

// addrFrom is the address a (read back from an IPv6 column) was, given its family.
func addrFrom(a netip.Addr, family uint8) netip.Addr {
	switch family {
	case familyV4:
		return a.Unmap()
	case familyV6:
		return a
	}
	return netip.Addr{}
}
