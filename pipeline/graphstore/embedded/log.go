package embedded

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"

	"github.com/kprobe/kprobe/pipeline/causal"
)

// The log is a file of records after an 8-byte magic. A record is one Write: a 4-byte
// little-endian payload length, the payload's CRC-32C, then the payload:
//
//	uvarint nodes; per node: str id, str label, uvarint props, (str key, str value)...
//	uvarint edges; per edge: str from, str to, str type, varint explained_ns, str rule,
//	    8-byte confidence (IEEE 754 bits), str join, uvarint evidence, uvarint id...
//
// where str is a uvarint length and the bytes. A record is applied whole or not at all,
// so a write cut short by a crash is simply absent after replay.
const (
	magic       = "KPGRAPH\x01" // the last byte is the format version
	headerSize  = 8
	maxPayload  = 1 << 30 // a length beyond this is damage, not a write
	maxStrBytes = 1 << 24
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendRecord appends g, framed, to buf.
func appendRecord(buf []byte, g causal.Graph) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, headerSize)...)
	buf = binary.AppendUvarint(buf, uint64(len(g.Nodes)))
	for _, n := range g.Nodes {
		buf = appendStr(buf, n.ID)
		buf = appendStr(buf, n.Label)
		buf = binary.AppendUvarint(buf, uint64(len(n.Props)))
		for k, v := range n.Props {
			buf = appendStr(buf, k)
			buf = appendStr(buf, v)
		}
	}
	buf = binary.AppendUvarint(buf, uint64(len(g.Edges)))
	for _, e := range g.Edges {
		buf = appendStr(buf, e.From)
		buf = appendStr(buf, e.To)
		buf = appendStr(buf, e.Type)
		buf = binary.AppendVarint(buf, e.ExplainedNs)
		buf = appendStr(buf, e.Rule)
		buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(e.Confidence))
		buf = appendStr(buf, e.Join)
		buf = binary.AppendUvarint(buf, uint64(len(e.Evidence)))
		for _, id := range e.Evidence {
			buf = binary.AppendUvarint(buf, id)
		}
	}
	payload := buf[start+headerSize:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, crcTable))
	return buf
}

func appendStr(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

// decoder reads a payload; the first error sticks and every later read returns zero.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("bad %s at %d bytes before the end of the record", what, len(d.b))
	}
	d.b = nil
}

func (d *decoder) uvarint(what string) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that each item needs at least min bytes for, so damage cannot
// ask for a huge allocation.
func (d *decoder) count(what string, min int) int {
	n := d.uvarint(what)
	if n > uint64(len(d.b)/min) {
		d.fail(what)
		return 0
	}
	return int(n)
}

func (d *decoder) str(what string) string {
	n := d.uvarint(what)
	if n > uint64(len(d.b)) || n > maxStrBytes {
		d.fail(what)
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func decodePayload(b []byte) (causal.Graph, error) {
	d := &decoder{b: b}
	var g causal.Graph
	if n := d.count("node count", 3); n > 0 {
		g.Nodes = make([]causal.Node, n)
	}
	for i := range g.Nodes {
		n := causal.Node{ID: d.str("node id"), Label: d.str("node label")}
		if np := d.count("property count", 2); np > 0 {
			n.Props = make(map[string]string, np)
			for range np {
				k := d.str("property key")
				n.Props[k] = d.str("property value")
			}
		}
		g.Nodes[i] = n
	}
	if n := d.count("edge count", 15); n > 0 {
		g.Edges = make([]causal.Edge, n)
	}
	for i := range g.Edges {
		e := causal.Edge{From: d.str("edge from"), To: d.str("edge to"), Type: d.str("edge type")}
		v, n := binary.Varint(d.b)
		if n <= 0 {
			d.fail("explained_ns")
		} else {
			e.ExplainedNs, d.b = v, d.b[n:]
		}
		e.Rule = d.str("rule")
		if len(d.b) < 8 {
			d.fail("confidence")
		} else {
			e.Confidence, d.b = math.Float64frombits(binary.LittleEndian.Uint64(d.b)), d.b[8:]
		}
		e.Join = d.str("join")
		if ne := d.count("evidence count", 1); ne > 0 {
			e.Evidence = make([]uint64, ne)
			for j := range e.Evidence {
				e.Evidence[j] = d.uvarint("evidence")
			}
		}
		g.Edges[i] = e
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes left over after the record", len(d.b))
	}
	if d.err != nil {
		return causal.Graph{}, d.err
	}
	return g, nil
}

// errNotALog says the file does not start with the magic: it is not ours, or not this
// version's, and is left untouched.
var errNotALog = errors.New("not a kprobe graph log")

// replay reads f's records from the start and hands each to apply. It returns where the
// last good record ends; damage after it (a record cut short by a crash, or bytes that
// changed on disk) is returned as the error beside that offset, with nothing of the
// damaged record applied.
func replay(f *os.File, apply func(causal.Graph)) (good int64, damage error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	head := make([]byte, headerSize)
	if _, err := io.ReadFull(r, head); err != nil || string(head) != magic {
		return 0, errNotALog
	}
	good = headerSize
	var payload []byte
	for {
		if _, err := io.ReadFull(r, head); err != nil {
			if err == io.EOF {
				return good, nil
			}
			return good, fmt.Errorf("record header cut short")
		}
		n := binary.LittleEndian.Uint32(head)
		// Damage can read as any length: never allocate more than the file still holds.
		if n > maxPayload || int64(n) > fi.Size()-good-headerSize {
			if int64(n) <= maxPayload {
				return good, fmt.Errorf("record of %d bytes cut short", n)
			}
			return good, fmt.Errorf("record length %d is impossible", n)
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return good, fmt.Errorf("record of %d bytes cut short", n)
		}
		if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(head[4:]) {
			return good, fmt.Errorf("record of %d bytes fails its checksum", n)
		}
		g, err := decodePayload(payload)
		if err != nil {
			return good, fmt.Errorf("record of %d bytes: %w", n, err)
		}
		apply(g)
		good += headerSize + int64(n)
	}
}
