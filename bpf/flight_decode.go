package bpf

import (
	"encoding/binary"
	"fmt"
)

// Offsets of struct flight_call and struct flight_chunk in flight.c; TestFlightLayout
// checks them against the bpf2go-generated types.
const (
	fcKind      = 0
	fcNr        = 2
	fcPid       = 4
	fcTid       = 8
	fcCPU       = 12
	fcKtime     = 16
	fcDur       = 24
	fcCgroup    = 32
	fcRet       = 40
	fcArgs      = 48
	fcTruncated = 96
	fcKept      = 104
	fcPathLen   = 108
	fcComm      = 112

	fkKind  = 0
	fkTid   = 4
	fkKtime = 8
	fkOff   = 16
	fkLen   = 20
)

// assembled is a call with what the assembler noticed about it.
type assembled struct {
	FlightCall
	lostChunks int
}

// assembler joins a call's chunks (payload, path) to its call record. A thread's records
// arrive in the order it wrote them (one ring buffer, one thread at a time), so one
// pending call per thread is enough: chunks of another call mean the earlier one's record
// was lost.
type assembler struct {
	pending map[uint32]*pendingCall
}

type pendingCall struct {
	ktime   uint64
	payload []byte
	path    []byte
	gap     bool // a chunk was lost: payload stops before it
}

func newAssembler() *assembler { return &assembler{pending: map[uint32]*pendingCall{}} }

// add takes one ring-buffer sample. It returns a call when the sample completes one.
func (a *assembler) add(raw []byte) (assembled, bool, error) {
	le := binary.LittleEndian
	if len(raw) < 2 {
		return assembled{}, false, fmt.Errorf("%w: %d bytes", ErrShortEvent, len(raw))
	}
	switch le.Uint16(raw[fcKind:]) {
	case flightKindPayload, flightKindPath:
		if len(raw) < flightChunkHdrSize {
			return assembled{}, false, fmt.Errorf("%w: chunk of %d bytes", ErrShortEvent, len(raw))
		}
		tid, ktime := le.Uint32(raw[fkTid:]), le.Uint64(raw[fkKtime:])
		off, n := le.Uint32(raw[fkOff:]), le.Uint32(raw[fkLen:])
		if n > flightChunkSize || int(n) > len(raw)-flightChunkHdrSize || uint64(off)+uint64(n) > MaxFlightPayload {
			return assembled{}, false, fmt.Errorf("%w: chunk at %d of %d bytes in a %d-byte sample", ErrBadEvent, off, n, len(raw))
		}
		p := a.pending[tid]
		if p == nil || p.ktime != ktime {
			p = &pendingCall{ktime: ktime}
			a.pending[tid] = p
		}
		data := raw[flightChunkHdrSize : flightChunkHdrSize+int(n)]
		if le.Uint16(raw[fcKind:]) == flightKindPath {
			p.path = append(p.path[:0], data...)
			return assembled{}, false, nil
		}
		// A thread's chunks come in order: one that does not continue the payload
		// follows a lost one, and only the unbroken prefix is kept.
		if int(off) == len(p.payload) && !p.gap {
			p.payload = append(p.payload, data...)
		} else {
			p.gap = true
		}
		return assembled{}, false, nil
	case flightKindCall:
	default:
		return assembled{}, false, fmt.Errorf("%w: flight record kind %d", ErrBadEvent, le.Uint16(raw))
	}
	if len(raw) < flightCallSize {
		return assembled{}, false, fmt.Errorf("%w: call record of %d bytes, want %d", ErrShortEvent, len(raw), flightCallSize)
	}
	nr := int(le.Uint16(raw[fcNr:]))
	name, ok := flightSyscalls[nr]
	if !ok {
		return assembled{}, false, fmt.Errorf("%w: syscall %d is not one the flight recorder records", ErrBadEvent, nr)
	}
	c := assembled{FlightCall: FlightCall{
		Nr:        nr,
		Syscall:   name,
		PID:       le.Uint32(raw[fcPid:]),
		TID:       le.Uint32(raw[fcTid:]),
		CPU:       le.Uint32(raw[fcCPU:]),
		KtimeNs:   le.Uint64(raw[fcKtime:]),
		DurNs:     le.Uint64(raw[fcDur:]),
		CgroupID:  le.Uint64(raw[fcCgroup:]),
		Ret:       int64(le.Uint64(raw[fcRet:])),
		Truncated: le.Uint64(raw[fcTruncated:]),
		Comm:      cString(raw[fcComm : fcComm+16]),
	}}
	for i := range c.Args {
		c.Args[i] = le.Uint64(raw[fcArgs+8*i:])
	}
	kept := int(le.Uint32(raw[fcKept:]))
	pathLen := int(le.Uint32(raw[fcPathLen:]))
	if kept > MaxFlightPayload || pathLen >= flightPathMax {
		return assembled{}, false, fmt.Errorf("%w: call with %d payload bytes, a %d-byte path", ErrBadEvent, kept, pathLen)
	}
	if p := a.pending[c.TID]; p != nil && p.ktime == c.KtimeNs {
		delete(a.pending, c.TID)
		if len(p.payload) >= kept {
			c.Payload = p.payload[:kept]
		} else {
			c.Payload = p.payload
		}
		if pathLen > 0 && len(p.path) == pathLen {
			c.Path = string(p.path)
		}
	} else if p != nil {
		delete(a.pending, c.TID) // chunks of a call whose record was lost
	}
	if missing := kept - len(c.Payload); missing > 0 {
		// Chunks lost in the kernel (ring full): what they held counts as truncated.
		c.Truncated += uint64(missing)
		c.lostChunks = (missing + flightChunkSize - 1) / flightChunkSize
	}
	return c, true, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
