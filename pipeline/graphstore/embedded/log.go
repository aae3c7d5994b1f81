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
	"slices"

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

func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what)
	if n > uint64(len(d.b)) || n > maxStrBytes {
		d.fail(what)
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

// visitor receives a record's items as views into its payload, valid only during the
// call: the graph interns what it keeps, so replaying a log allocates little more than
// the strings it has not seen.
type visitor interface {
	// node gets props as key, value, key, value...
	node(id, label []byte, props [][]byte)
	edge(e *rawEdge)
}

type rawEdge struct {
	from, to, typ, rule, join []byte
	explained                 int64
	confidence                float64
	evidence                  []uint64
}

// walkPayload parses b and hands each item to v; with v nil it only checks b. Callers
// that apply what they see check first, so that a bad record changes nothing.
func walkPayload(b []byte, v visitor) error {
	d := &decoder{b: b}
	var props [][]byte
	for range d.count("node count", 3) {
		id, label := d.bytes("node id"), d.bytes("node label")
		props = props[:0]
		for range d.count("property count", 2) {
			props = append(props, d.bytes("property key"), d.bytes("property value"))
		}
		if d.err != nil {
			return d.err
		}
		if v != nil {
			v.node(id, label, props)
		}
	}
	var e rawEdge
	for range d.count("edge count", 15) {
		e.from, e.to, e.typ = d.bytes("edge from"), d.bytes("edge to"), d.bytes("edge type")
		if x, n := binary.Varint(d.b); n <= 0 {
			d.fail("explained_ns")
		} else {
			e.explained, d.b = x, d.b[n:]
		}
		e.rule = d.bytes("rule")
		if len(d.b) < 8 {
			d.fail("confidence")
		} else {
			e.confidence, d.b = math.Float64frombits(binary.LittleEndian.Uint64(d.b)), d.b[8:]
		}
		e.join = d.bytes("join")
		e.evidence = e.evidence[:0]
		for range d.count("evidence count", 1) {
			e.evidence = append(e.evidence, d.uvarint("evidence"))
		}
		if d.err != nil {
			return d.err
		}
		if v != nil {
			v.edge(&e)
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes left over after the record", len(d.b))
	}
	return d.err
}

// decodePayload returns a record as a graph (tests and fuzzing; replay walks instead).
func decodePayload(b []byte) (causal.Graph, error) {
	var c collector
	if err := walkPayload(b, &c); err != nil {
		return causal.Graph{}, err
	}
	return c.g, nil
}

type collector struct{ g causal.Graph }

func (c *collector) node(id, label []byte, props [][]byte) {
	n := causal.Node{ID: string(id), Label: string(label)}
	for i := 0; i < len(props); i += 2 {
		if n.Props == nil {
			n.Props = make(map[string]string, len(props)/2)
		}
		n.Props[string(props[i])] = string(props[i+1])
	}
	c.g.Nodes = append(c.g.Nodes, n)
}

func (c *collector) edge(e *rawEdge) {
	c.g.Edges = append(c.g.Edges, causal.Edge{
		From: string(e.from), To: string(e.to), Type: string(e.typ), ExplainedNs: e.explained,
		Rule: string(e.rule), Confidence: e.confidence, Join: string(e.join), Evidence: slices.Clone(e.evidence),
	})
}

// errNotALog says the file does not start with the magic: it is not ours, or not this
// version's, and is left untouched.
var errNotALog = errors.New("not a kprobe graph log")

// replay reads f's records from the start and hands each, checked, to v. It returns where the
// last good record ends; damage after it (a record cut short by a crash, or bytes that
// changed on disk) is returned as the error beside that offset, with nothing of the
// damaged record applied.
func replay(f *os.File, v visitor) (good int64, damage error) {
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
		if err := walkPayload(payload, nil); err != nil {
			return good, fmt.Errorf("record of %d bytes: %w", n, err)
		}
		walkPayload(payload, v)
		good += headerSize + int64(n)
	}
}
