package eventlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"

	"github.com/kprobe/kprobe/pipeline/event"
)

// The embedded engine exchanges rows in ClickHouse's RowBinary format: little-endian
// fixed-width numbers, uvarint-prefixed strings, IPv6 as 16 bytes in network order and
// Map as a uvarint count of key/value pairs. Field order is the order of columns.

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

// addr16 is a's 16-byte form (IPv4 mapped); the zone of a scoped IPv6 address is dropped.
func addr16(a netip.Addr) [16]byte {
	if !a.IsValid() {
		return [16]byte{}
	}
	return a.As16()
}

func addrFrom(b [16]byte, family uint8) netip.Addr {
	switch family {
	case familyV4:
		return netip.AddrFrom16(b).Unmap()
	case familyV6:
		return netip.AddrFrom16(b)
	}
	return netip.Addr{}
}

func addrFamilies(e *event.Event) uint8 {
	return addrFamily(e.SAddr) | addrFamily(e.DAddr)<<2
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendEvent appends e as one RowBinary row.
func appendEvent(b []byte, e *event.Event) []byte {
	le := binary.LittleEndian
	b = le.AppendUint64(b, e.ID)
	b = le.AppendUint64(b, uint64(e.TsNs))
	b = le.AppendUint64(b, e.KtimeNs)
	b = appendString(b, e.Node)
	b = le.AppendUint32(b, e.PID)
	b = le.AppendUint32(b, e.TID)
	b = le.AppendUint32(b, e.CPU)
	b = appendString(b, e.Comm)
	b = le.AppendUint64(b, e.CgroupID)
	b = append(b, byte(e.Type))
	b = le.AppendUint64(b, e.DurNs)
	b = appendString(b, e.Syscall)
	b = le.AppendUint32(b, uint32(e.FD))
	b = le.AppendUint64(b, uint64(e.Bytes))
	b = le.AppendUint32(b, uint32(e.Errno))
	b = le.AppendUint64(b, e.Dev)
	b = le.AppendUint64(b, e.Ino)
	s, d := addr16(e.SAddr), addr16(e.DAddr)
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	b = le.AppendUint16(b, e.SPort)
	b = le.AppendUint16(b, e.DPort)
	b = append(b, addrFamilies(e), boolByte(e.Preempted))
	b = le.AppendUint32(b, e.NextPID)
	b = le.AppendUint32(b, e.NextTID)
	b = appendString(b, e.NextComm)
	b = le.AppendUint32(b, e.WakerPID)
	b = le.AppendUint32(b, e.WakerTID)
	b = le.AppendUint64(b, e.RunqDelayNs)
	b = le.AppendUint64(b, e.Addr)
	b = le.AppendUint64(b, e.IP)
	b = le.AppendUint64(b, e.ErrorCode)
	b = append(b, boolByte(e.KernelFault))
	b = binary.AppendUvarint(b, uint64(len(e.Payload)))
	b = append(b, e.Payload...)
	b = appendString(b, e.TraceID)
	b = appendString(b, e.SpanID)
	b = appendString(b, e.Service)
	b = appendString(b, e.SpanName)
	b = appendString(b, e.Join)
	b = binary.AppendUvarint(b, uint64(len(e.Attrs)))
	for k, v := range e.Attrs {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	return b
}

var errShort = errors.New("truncated row")

// rowReader decodes RowBinary. The first error sticks; later reads return zeros.
type rowReader struct {
	b   []byte
	off int
	err error
	// intern keeps one copy of repeated low-cardinality strings (node, comm, ...).
	intern map[string]string
}

func (r *rowReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.err = errShort
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *rowReader) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *rowReader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (r *rowReader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *rowReader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (r *rowReader) ip() (a [16]byte) {
	copy(a[:], r.take(16))
	return a
}

func (r *rowReader) length() int {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.b[r.off:])
	if k <= 0 {
		r.err = errShort
		return 0
	}
	r.off += k
	if n > uint64(len(r.b)-r.off) || n > math.MaxInt32 {
		r.err = errShort
		return 0
	}
	return int(n)
}

func (r *rowReader) bytes() []byte {
	n := r.length()
	if n == 0 {
		return nil
	}
	return append([]byte(nil), r.take(n)...)
}

func (r *rowReader) str() string {
	n := r.length()
	if n == 0 {
		return ""
	}
	return string(r.take(n))
}

// lcStr reads a string that repeats across rows, sharing one copy.
func (r *rowReader) lcStr() string {
	n := r.length()
	if n == 0 {
		return ""
	}
	p := r.take(n)
	if p == nil {
		return ""
	}
	if s, ok := r.intern[string(p)]; ok { // no allocation for the lookup
		return s
	}
	s := string(p)
	if len(r.intern) < 4096 {
		r.intern[s] = s
	}
	return s
}

func (r *rowReader) event(e *event.Event) {
	e.ID = r.u64()
	e.TsNs = int64(r.u64())
	e.KtimeNs = r.u64()
	e.Node = r.lcStr()
	e.PID = r.u32()
	e.TID = r.u32()
	e.CPU = r.u32()
	e.Comm = r.lcStr()
	e.CgroupID = r.u64()
	e.Type = event.Type(r.u8())
	e.DurNs = r.u64()
	e.Syscall = r.lcStr()
	e.FD = int32(r.u32())
	e.Bytes = int64(r.u64())
	e.Errno = int32(r.u32())
	e.Dev = r.u64()
	e.Ino = r.u64()
	saddr, daddr := r.ip(), r.ip()
	e.SPort = r.u16()
	e.DPort = r.u16()
	fam := r.u8()
	e.SAddr, e.DAddr = addrFrom(saddr, fam&3), addrFrom(daddr, fam>>2&3)
	e.Preempted = r.u8() != 0
	e.NextPID = r.u32()
	e.NextTID = r.u32()
	e.NextComm = r.lcStr()
	e.WakerPID = r.u32()
	e.WakerTID = r.u32()
	e.RunqDelayNs = r.u64()
	e.Addr = r.u64()
	e.IP = r.u64()
	e.ErrorCode = r.u64()
	e.KernelFault = r.u8() != 0
	e.Payload = r.bytes()
	e.TraceID = r.str()
	e.SpanID = r.str()
	e.Service = r.lcStr()
	e.SpanName = r.lcStr()
	e.Join = r.lcStr()
	if n := r.length(); n > 0 {
		// Each pair takes at least two bytes: a corrupt count cannot force a huge map.
		if n > (len(r.b)-r.off)/2 {
			r.err = errShort
			return
		}
		e.Attrs = make(map[string]string, n)
		for i := 0; i < n && r.err == nil; i++ {
			k := r.lcStr()
			e.Attrs[k] = r.str()
		}
	}
}

// decodeEvents decodes a RowBinary result of columnList rows.
func decodeEvents(b []byte) ([]event.Event, error) {
	r := rowReader{b: b, intern: make(map[string]string)}
	var out []event.Event
	for r.off < len(r.b) && r.err == nil {
		out = append(out, event.Event{})
		r.event(&out[len(out)-1])
	}
	if r.err != nil {
		return nil, fmt.Errorf("decoding row %d at byte %d: %w", len(out), r.off, r.err)
	}
	return out, nil
}
