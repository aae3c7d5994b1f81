package eventlog

import (
	"encoding/binary"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/kprobe/kprobe/pipeline/event"
)

// The embedded engine's Insert hands rows over as a file in ClickHouse's Native format:
// column by column, which the engine reads about ten times faster than RowBinary (see
// BenchmarkEmbeddedInsert). A Native file is a sequence of blocks; each block is
//
//	uvarint column count, uvarint row count,
//	then per column: name and type (uvarint length + bytes each), then the column's data.
//
// (The file form carries no BlockInfo and no serialization-kind byte: those belong to the
// client/server protocol only.) The data of a column of n rows is: fixed-width numbers as n
// little-endian values back to back (Bool as UInt8, IPv6 as 16 bytes in network order);
// String as n times uvarint length + bytes; Map(K, V), stored as Array(Tuple(K, V)), as n
// cumulative UInt64 end offsets, then all keys as one column, then all values.
//
// LowCardinality columns are sent as plain String (and the attrs map as Map(String,
// String)): the INSERT converts them, which costs the engine less than building the
// dictionaries here would cost Go.

// nativeBlockRows caps the rows per block, so a huge batch is encoded a slice at a time.
// It matches the engine's default max_insert_block_size. (A variable for the tests.)
var nativeBlockRows = 1 << 20

// nativeTypes are the column types as the Native file declares them, in columns order.
var nativeTypes = func() []string {
	types := make([]string, len(columns))
	for i, c := range columns {
		typ, _, _ := strings.Cut(c.typ, " CODEC")
		types[i] = strings.ReplaceAll(typ, "LowCardinality(String)", "String")
	}
	return types
}()

// nativeStructure is the file() structure argument for a Native spool file.
var nativeStructure = func() string {
	s := make([]string, len(columns))
	for i, c := range columns {
		s[i] = c.name + " " + nativeTypes[i]
	}
	return strings.Join(s, ", ")
}()

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

// Column indexes into nativeBlock.cols, in columns order (TestNativeColumns checks them).
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
	ncAttrs
	nativeColumns
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
func (nb *nativeBlock) encode(events []event.Event) {
	n := len(events)
	for i := range nb.cols {
		c := nb.cols[i][:0]
		if i == 0 {
			c = binary.AppendUvarint(c, nativeColumns)
			c = binary.AppendUvarint(c, uint64(n))
		}
		c = appendString(c, columns[i].name)
		c = appendString(c, nativeTypes[i])
		nb.cols[i] = slices.Grow(c, n*nativeWidth(nativeTypes[i]))
	}
	nb.attrKeys, nb.attrValues = nb.attrKeys[:0], nb.attrValues[:0]

	le := binary.LittleEndian
	c := &nb.cols
	var attrs uint64
	for i := range events {
		e := &events[i]
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

// writeNative writes events to w as Native blocks.
func writeNative(w io.Writer, events []event.Event) error {
	nb := nativeBlocks.Get().(*nativeBlock)
	defer nativeBlocks.Put(nb)
	for len(events) > 0 {
		n := min(len(events), nativeBlockRows)
		nb.encode(events[:n])
		if err := nb.writeTo(w); err != nil {
			return err
		}
		events = events[n:]
	}
	return nil
}
