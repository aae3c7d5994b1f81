package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Byte offsets of struct event in probes/event.h; TestEventLayout
// (decode_test.go) checks them against the bpf2go-generated bpfEvent.
const (
	offTs         = 0
	offDur        = 8
	offCgroup     = 16
	offPid        = 24
	offTid        = 28
	offCPU        = 32
	offType       = 36
	offSyscall    = 37
	offFlags      = 38
	offComm       = 40
	offRet        = 56
	offFd         = 64
	offErr        = 68
	offDev        = 72
	offIno        = 80
	offSaddr      = 88
	offDaddr      = 104
	offSport      = 120
	offDport      = 122
	offFamily     = 124
	offPayloadLen = 126
	offNextPid    = 128
	offNextTid    = 132
	offWakerPid   = 136
	offWakerTid   = 140
	offRunq       = 144
	offNextComm   = 152
	offAddr       = 168
	offIP         = 176
	offErrorCode  = 184
	eventSize     = 192
)

const (
	flagPreempted    = 1
	flagKernelFault  = 2
	flagKernelWakeup = 4

	afInet  = 2
	afInet6 = 10
)

// ErrShortEvent and ErrBadEvent are returned by Decode for malformed samples.
var (
	ErrShortEvent = errors.New("event sample too short")
	ErrBadEvent   = errors.New("malformed event sample")
)

// Decode parses one ring-buffer sample into e, overwriting every field.
// e.Payload's backing array is reused when it is large enough. Decode never
// panics: short or inconsistent input returns an error.
func Decode(raw []byte, e *Event) error {
	typ, err := checkSample(raw)
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	sc := raw[offSyscall]
	plen := int(le.Uint16(raw[offPayloadLen:]))
	flags := raw[offFlags]
	payload := e.Payload[:0]

	*e = Event{
		KtimeNs:      le.Uint64(raw[offTs:]),
		DurNs:        le.Uint64(raw[offDur:]),
		PID:          le.Uint32(raw[offPid:]),
		TID:          le.Uint32(raw[offTid:]),
		CPU:          le.Uint32(raw[offCPU:]),
		Comm:         internComm(raw[offComm : offComm+16]),
		CgroupID:     le.Uint64(raw[offCgroup:]),
		Type:         typ,
		Syscall:      syscallNames[sc],
		FD:           int32(le.Uint32(raw[offFd:])),
		Ret:          int64(le.Uint64(raw[offRet:])),
		Errno:        int32(le.Uint32(raw[offErr:])),
		Ino:          le.Uint64(raw[offIno:]),
		SPort:        le.Uint16(raw[offSport:]),
		DPort:        le.Uint16(raw[offDport:]),
		Preempted:    flags&flagPreempted != 0,
		NextPID:      le.Uint32(raw[offNextPid:]),
		NextTID:      le.Uint32(raw[offNextTid:]),
		WakerPID:     le.Uint32(raw[offWakerPid:]),
		WakerTID:     le.Uint32(raw[offWakerTid:]),
		RunqDelayNs:  le.Uint64(raw[offRunq:]),
		Addr:         le.Uint64(raw[offAddr:]),
		IP:           le.Uint64(raw[offIP:]),
		ErrorCode:    le.Uint64(raw[offErrorCode:]),
		KernelFault:  flags&flagKernelFault != 0,
		KernelWakeup: flags&flagKernelWakeup != 0,
	}
	if kdev := le.Uint64(raw[offDev:]); kdev != 0 {
		// Kernel-internal dev_t is MAJOR<<20|MINOR; stat(2) uses the glibc encoding.
		e.Dev = unix.Mkdev(uint32(kdev>>20), uint32(kdev&0xfffff))
	}
	if typ == EventSchedSwitch {
		e.NextComm = internComm(raw[offNextComm : offNextComm+16])
	}
	switch le.Uint16(raw[offFamily:]) {
	case afInet:
		e.SAddr = netip.AddrFrom4([4]byte(raw[offSaddr : offSaddr+4]))
		e.DAddr = netip.AddrFrom4([4]byte(raw[offDaddr : offDaddr+4]))
	case afInet6:
		e.SAddr = netip.AddrFrom16([16]byte(raw[offSaddr : offSaddr+16]))
		e.DAddr = netip.AddrFrom16([16]byte(raw[offDaddr : offDaddr+16]))
	}
	if plen > 0 {
		e.Payload = append(payload, raw[eventSize:eventSize+plen]...)
	}
	return nil
}

// checkSample returns the type of a ring-buffer sample that Decode accepts,
// or why it does not.
func checkSample(raw []byte) (EventType, error) {
	if len(raw) < eventSize {
		return 0, fmt.Errorf("%w: %d bytes, want %d", ErrShortEvent, len(raw), eventSize)
	}
	typ := EventType(raw[offType])
	if typ == 0 || int(typ) >= numEventTypes {
		return 0, fmt.Errorf("%w: type %d", ErrBadEvent, typ)
	}
	if sc := raw[offSyscall]; int(sc) >= len(syscallNames) {
		return 0, fmt.Errorf("%w: syscall %d", ErrBadEvent, sc)
	}
	plen := int(binary.LittleEndian.Uint16(raw[offPayloadLen:]))
	if plen > MaxPayload || eventSize+plen > len(raw) {
		return 0, fmt.Errorf("%w: payload length %d in %d-byte sample", ErrBadEvent, plen, len(raw))
	}
	return typ, nil
}

// restartedSample reports a read/write whose result is one of the kernel's
// internal restart codes (ERESTARTSYS 512, ERESTARTNOINTR 513,
// ERESTARTNOHAND 514, ERESTART_RESTARTBLOCK 516): a signal interrupted it
// and the kernel runs it again (or turns the code into EINTR, which the
// sched_switch and the next attempt still show). raw passed checkSample.
func restartedSample(typ EventType, raw []byte) bool {
	if typ != EventRead && typ != EventWrite {
		return false
	}
	switch binary.LittleEndian.Uint32(raw[offErr:]) {
	case 512, 513, 514, 516:
		return true
	}
	return false
}

// Comm strings repeat endlessly; a small lock-free cache keyed by the raw
// 16 bytes keeps Decode allocation-free for them. Collisions just replace.
type commEntry struct {
	key [16]byte
	s   string
}

var commCache [1024]atomic.Pointer[commEntry]

func internComm(b []byte) string {
	if b[0] == 0 {
		return ""
	}
	k := [16]byte(b)
	lo := binary.LittleEndian.Uint64(k[:8])
	hi := binary.LittleEndian.Uint64(k[8:])
	h := (lo ^ hi*0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9
	slot := &commCache[h>>54]
	if ent := slot.Load(); ent != nil && ent.key == k {
		return ent.s
	}
	n := 0
	for n < len(k) && k[n] != 0 {
		n++
	}
	ent := &commEntry{key: k, s: string(k[:n])}
	slot.Store(ent)
	return ent.s
}
