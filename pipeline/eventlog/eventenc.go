package eventlog

import (
	"encoding/binary"
	"io"
	"slices"
	"sync"

	"github.com/kprobe/kprobe/pipeline/event"
)

// The events table's Native encoder is written by hand: the one place besides tables.go
// that knows its column order (TestEventEncoder proves the two write the same stream).
// Everything else, events' decoding included, goes through the table's columns and
// ch-go. The reason is speed on the engine's hot path: encoding a 100k-event batch took
// 23 ms of CPU by hand and 38 ms through the table's ch-go columns
// (BenchmarkNativeEncode/{hand,columns}, side by side on a shared 2-core machine,
// cpu-ms/op). The straight-line code reads each event once and appends every field
// where it goes; the columns pay a dynamic call and a pass over the rows per column.

// eventsOut is a batch of events, written as Native by the hand encoder.
type eventsOut struct{ rowsOut[event.Event] }

func (o eventsOut) writeNative(w io.Writer) error { return writeEvents(w, o.rows) }

// eventTypes are the column types as the Native stream declares them, in table order.
var eventTypes = events.nativeTypes()

// nativeWidth is the bytes per row of a column of typ: exact for fixed-width types, a
// guess for the rest (only to presize buffers).
func nativeWidth(typ string) int {
	switch typ {
	case "UInt8", "Bool":
		return 1
	case "UInt16":
		return 2
	case "UInt32", "Int32":
		return 4
	case "UInt64", "Int64":
		return 8
	case "IPv6":
		return 16
	case "Map(String, String)":
		return 8 // the offsets
	}
	return 1
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Column indexes into nativeBlock.cols, in the order of the events table (tables.go).
const (
	ncID = iota
	ncTsNs
	ncKtimeNs
	ncNode
	ncPID
	ncTID
	ncCPU
	ncComm
	ncCgroupID
	ncType
	ncDurNs
	ncSyscall
	ncFD
	ncBytes
	ncErrno
	ncDev
	ncIno
	ncSAddr
	ncDAddr
	ncSPort
	ncDPort
	ncAddrFamily
	ncPreempted
	ncNextPID
	ncNextTID
	ncNextComm
	ncWakerPID
	ncWakerTID
	ncRunqDelayNs
	ncAddr
	ncIP
	ncErrorCode
	ncKernelFault
	ncPayload
	ncTraceID
	ncSpanID
	ncService
	ncSpanName
	ncSpanJoin
	ncPath
	ncTruncated
	ncArg0        // ncArg0 .. ncArg0+5
	ncAttrs       = ncArg0 + 6
	nativeColumns = ncAttrs + 1
)

// nativeBlock encodes one block. cols[i] holds column i's header (name, type; the first
// also the block header) followed by its data, so the block is written with one write per
// column and no further copy. attrKeys and attrValues are the attrs map's nested columns,
// written after cols[ncAttrs] (its offsets).
type nativeBlock struct {
	cols                 [nativeColumns][]byte
	attrKeys, attrValues []byte
}

var nativeBlocks = sync.Pool{New: func() any { return new(nativeBlock) }}

// encode fills the block with events (at most nativeBlockRows of them).
func (nb *nativeBlock) encode(evs []event.Event) {
	n := len(evs)
	for i := range nb.cols {
		c := nb.cols[i][:0]
		if i == 0 {
			c = binary.AppendUvarint(c, nativeColumns)
			c = binary.AppendUvarint(c, uint64(n))
		}
		c = appendString(c, events.cols[i].name)
		c = appendString(c, eventTypes[i])
		nb.cols[i] = slices.Grow(c, n*nativeWidth(eventTypes[i]))
	}
	nb.attrKeys, nb.attrValues = nb.attrKeys[:0], nb.attrValues[:0]

	le := binary.LittleEndian
	c := &nb.cols
	var attrs uint64
	for i := range evs {
		e := &evs[i]
		c[ncID] = le.AppendUint64(c[ncID], e.ID)
		c[ncTsNs] = le.AppendUint64(c[ncTsNs], uint64(e.TsNs))
		c[ncKtimeNs] = le.AppendUint64(c[ncKtimeNs], e.KtimeNs)
		c[ncNode] = appendString(c[ncNode], e.Node)
		c[ncPID] = le.AppendUint32(c[ncPID], e.PID)
		c[ncTID] = le.AppendUint32(c[ncTID], e.TID)
		c[ncCPU] = le.AppendUint32(c[ncCPU], e.CPU)
		c[ncComm] = appendString(c[ncComm], e.Comm)
		c[ncCgroupID] = le.AppendUint64(c[ncCgroupID], e.CgroupID)
		c[ncType] = append(c[ncType], byte(e.Type))
		c[ncDurNs] = le.AppendUint64(c[ncDurNs], e.DurNs)
		c[ncSyscall] = appendString(c[ncSyscall], e.Syscall)
		c[ncFD] = le.AppendUint32(c[ncFD], uint32(e.FD))
		c[ncBytes] = le.AppendUint64(c[ncBytes], uint64(e.Bytes))
		c[ncErrno] = le.AppendUint32(c[ncErrno], uint32(e.Errno))
		c[ncDev] = le.AppendUint64(c[ncDev], e.Dev)
		c[ncIno] = le.AppendUint64(c[ncIno], e.Ino)
		s, d := addr16(e.SAddr), addr16(e.DAddr)
		c[ncSAddr] = append(c[ncSAddr], s[:]...)
		c[ncDAddr] = append(c[ncDAddr], d[:]...)
		c[ncSPort] = le.AppendUint16(c[ncSPort], e.SPort)
		c[ncDPort] = le.AppendUint16(c[ncDPort], e.DPort)
		c[ncAddrFamily] = append(c[ncAddrFamily], addrFamilies(e))
		c[ncPreempted] = append(c[ncPreempted], boolByte(e.Preempted))
		c[ncNextPID] = le.AppendUint32(c[ncNextPID], e.NextPID)
		c[ncNextTID] = le.AppendUint32(c[ncNextTID], e.NextTID)
		c[ncNextComm] = appendString(c[ncNextComm], e.NextComm)
		c[ncWakerPID] = le.AppendUint32(c[ncWakerPID], e.WakerPID)
		c[ncWakerTID] = le.AppendUint32(c[ncWakerTID], e.WakerTID)
		c[ncRunqDelayNs] = le.AppendUint64(c[ncRunqDelayNs], e.RunqDelayNs)
		c[ncAddr] = le.AppendUint64(c[ncAddr], e.Addr)
		c[ncIP] = le.AppendUint64(c[ncIP], e.IP)
		c[ncErrorCode] = le.AppendUint64(c[ncErrorCode], e.ErrorCode)
		c[ncKernelFault] = append(c[ncKernelFault], boolByte(e.KernelFault))
		c[ncPayload] = binary.AppendUvarint(c[ncPayload], uint64(len(e.Payload)))
		c[ncPayload] = append(c[ncPayload], e.Payload...)
		c[ncTraceID] = appendString(c[ncTraceID], e.TraceID)
		c[ncSpanID] = appendString(c[ncSpanID], e.SpanID)
		c[ncService] = appendString(c[ncService], e.Service)
		c[ncSpanName] = appendString(c[ncSpanName], e.SpanName)
		c[ncSpanJoin] = appendString(c[ncSpanJoin], e.Join)
		c[ncPath] = appendString(c[ncPath], e.Path)
		c[ncTruncated] = le.AppendUint64(c[ncTruncated], e.Truncated)
		for a := range 6 {
			var v int64
			if a < len(e.Args) {
				v = e.Args[a]
			}
			c[ncArg0+a] = le.AppendUint64(c[ncArg0+a], uint64(v))
		}
		for k, v := range e.Attrs {
			nb.attrKeys = appendString(nb.attrKeys, k)
			nb.attrValues = appendString(nb.attrValues, v)
		}
		attrs += uint64(len(e.Attrs))
		c[ncAttrs] = le.AppendUint64(c[ncAttrs], attrs)
	}
}

// writeTo writes the block.
func (nb *nativeBlock) writeTo(w io.Writer) error {
	for _, b := range nb.cols {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	if _, err := w.Write(nb.attrKeys); err != nil {
		return err
	}
	_, err := w.Write(nb.attrValues)
	return err
}

// writeEvents writes events to w as Native blocks.
func writeEvents(w io.Writer, evs []event.Event) error {
	nb := nativeBlocks.Get().(*nativeBlock)
	defer nativeBlocks.Put(nb)
	for len(evs) > 0 {
		n := min(len(evs), nativeBlockRows)
		nb.encode(evs[:n])
		if err := nb.writeTo(w); err != nil {
			return err
		}
		evs = evs[n:]
	}
	return nil
}
