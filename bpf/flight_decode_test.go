package bpf

import (
	"encoding/binary"
	"errors"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// TestFlightLayout pins the decoder's offsets to the structs bpf2go generated from flight.c.
func TestFlightLayout(t *testing.T) {
	var c flightFlightCall
	var k flightFlightChunk
	got := map[string]uintptr{
		"kind": unsafe.Offsetof(c.Kind), "nr": unsafe.Offsetof(c.Nr), "pid": unsafe.Offsetof(c.Pid),
		"tid": unsafe.Offsetof(c.Tid), "cpu": unsafe.Offsetof(c.Cpu), "ktime": unsafe.Offsetof(c.Ktime),
		"dur": unsafe.Offsetof(c.Dur), "cgroup": unsafe.Offsetof(c.CgroupId), "ret": unsafe.Offsetof(c.Ret),
		"args": unsafe.Offsetof(c.Args), "truncated": unsafe.Offsetof(c.Truncated), "kept": unsafe.Offsetof(c.Kept),
		"path_len": unsafe.Offsetof(c.PathLen), "comm": unsafe.Offsetof(c.Comm), "size": unsafe.Sizeof(c),
		"chunk.kind": unsafe.Offsetof(k.Kind), "chunk.tid": unsafe.Offsetof(k.Tid), "chunk.ktime": unsafe.Offsetof(k.Ktime),
		"chunk.off": unsafe.Offsetof(k.Off), "chunk.len": unsafe.Offsetof(k.Len), "chunk.data": unsafe.Offsetof(k.Data),
		"chunk.cap": unsafe.Sizeof(k.Data),
	}
	want := map[string]uintptr{
		"kind": fcKind, "nr": fcNr, "pid": fcPid, "tid": fcTid, "cpu": fcCPU, "ktime": fcKtime, "dur": fcDur,
		"cgroup": fcCgroup, "ret": fcRet, "args": fcArgs, "truncated": fcTruncated, "kept": fcKept,
		"path_len": fcPathLen, "comm": fcComm, "size": flightCallSize,
		"chunk.kind": fkKind, "chunk.tid": fkTid, "chunk.ktime": fkKtime, "chunk.off": fkOff, "chunk.len": fkLen,
		"chunk.data": flightChunkHdrSize, "chunk.cap": flightChunkSize,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layout (-decoder +generated):\n%s", diff)
	}
}

func chunk(kind uint16, tid uint32, ktime uint64, off uint32, data []byte) []byte {
	b := make([]byte, flightChunkHdrSize+len(data))
	le := binary.LittleEndian
	le.PutUint16(b[fkKind:], kind)
	le.PutUint32(b[fkTid:], tid)
	le.PutUint64(b[fkKtime:], ktime)
	le.PutUint32(b[fkOff:], off)
	le.PutUint32(b[fkLen:], uint32(len(data)))
	copy(b[flightChunkHdrSize:], data)
	return b
}

func callRec(nr uint16, tid uint32, ktime uint64, ret int64, kept, pathLen uint32) []byte {
	b := make([]byte, flightCallSize)
	le := binary.LittleEndian
	le.PutUint16(b[fcKind:], flightKindCall)
	le.PutUint16(b[fcNr:], nr)
	le.PutUint32(b[fcPid:], 7)
	le.PutUint32(b[fcTid:], tid)
	le.PutUint64(b[fcKtime:], ktime)
	le.PutUint64(b[fcRet:], uint64(ret))
	le.PutUint64(b[fcArgs:], 3)
	le.PutUint32(b[fcKept:], kept)
	le.PutUint32(b[fcPathLen:], pathLen)
	copy(b[fcComm:], "ledger")
	return b
}

func TestAssemblerJoinsChunks(t *testing.T) {
	a := newAssembler()
	feed := func(raw []byte) (assembled, bool) {
		t.Helper()
		c, ok, err := a.add(raw)
		if err != nil {
			t.Fatal(err)
		}
		return c, ok
	}
	// Two threads interleaved; the second chunk of thread 1 arrives after thread 2's call.
	feed(chunk(flightKindPayload, 1, 100, 0, []byte("hello ")))
	feed(chunk(flightKindPath, 2, 200, 0, []byte("/etc/ledger.conf")))
	c2, ok := feed(callRec(257, 2, 200, 3, 0, 16))
	if !ok || c2.Path != "/etc/ledger.conf" || c2.Syscall != "openat" || c2.Ret != 3 {
		t.Fatalf("thread 2's open: %+v", c2)
	}
	feed(chunk(flightKindPayload, 1, 100, 6, []byte("world")))
	c1, ok := feed(callRec(0, 1, 100, 11, 11, 0))
	if !ok || string(c1.Payload) != "hello world" || c1.Truncated != 0 || c1.Comm != "ledger" || c1.Args[0] != 3 {
		t.Fatalf("thread 1's read: %+v", c1)
	}
	// A lost first chunk: the call says 11 bytes were kept; the 5 that arrived follow a
	// hole, so none can be trusted.
	feed(chunk(flightKindPayload, 1, 300, 6, []byte("world")))
	c3, _ := feed(callRec(0, 1, 300, 11, 11, 0))
	if len(c3.Payload) != 0 || c3.Truncated != 11 || c3.lostChunks != 1 {
		t.Errorf("read with a lost chunk: %d bytes kept, truncated %d, lost chunks %d", len(c3.Payload), c3.Truncated, c3.lostChunks)
	}
}

func TestAssemblerRejects(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
	}{
		{"empty", nil},
		{"unknown kind", []byte{9, 0, 0, 0}},
		{"short call", callRec(0, 1, 1, 0, 0, 0)[:40]},
		{"short chunk", chunk(flightKindPayload, 1, 1, 0, nil)[:10]},
		{"chunk longer than the sample", func() []byte {
			b := chunk(flightKindPayload, 1, 1, 0, []byte("ab"))
			binary.LittleEndian.PutUint32(b[fkLen:], 100)
			return b
		}()},
		{"chunk beyond the payload bound", chunk(flightKindPayload, 1, 1, MaxFlightPayload, []byte("x"))},
		{"unrecorded syscall", callRec(9, 1, 1, 0, 0, 0)},
		{"huge kept", callRec(0, 1, 1, 0, MaxFlightPayload+1, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := newAssembler().add(tt.raw)
			if !errors.Is(err, ErrBadEvent) && !errors.Is(err, ErrShortEvent) {
				t.Errorf("error %v, want ErrBadEvent or ErrShortEvent", err)
			}
		})
	}
}

func FuzzFlightAssembler(f *testing.F) {
	f.Add(chunk(flightKindPayload, 1, 100, 0, []byte("hello")), callRec(0, 1, 100, 5, 5, 0))
	f.Add(chunk(flightKindPath, 2, 5, 0, []byte("/x")), callRec(257, 2, 5, 3, 0, 2))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		asm := newAssembler()
		asm.add(a)
		c, ok, err := asm.add(b)
		if ok && err == nil && uint64(len(c.Payload)) > MaxFlightPayload {
			t.Fatalf("payload of %d bytes", len(c.Payload))
		}
	})
}
