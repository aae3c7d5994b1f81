package eventlog

import (
	"encoding/binary"
	"fmt"

	"github.com/ClickHouse/ch-go/proto"
)

// maxInterned bounds the strings one column keeps shared.
const maxInterned = 4096

var lowCardinalityString = proto.ColumnTypeLowCardinality.Sub(proto.ColumnTypeString)

// strCol is ch-go's String column kept in the Native layout: buf holds each value after
// its uvarint length, exactly as it is written, so writing the column is one write of
// buf. (proto.ColStr keeps values and positions apart and copies every value a second
// time to write it, which made encoding a batch of events twice as slow.) Where a
// value starts is found only when a row is read back.
//
// It decodes with bounds (no length beyond the input), and also reads
// LowCardinality(String), which the embedded engine answers for such columns; Go always
// sends plain String, and the INSERT converts. Decoded values that repeat (node, comm,
// service, attribute keys: a few values over many rows) share one copy.
type strCol struct {
	buf    []byte
	rows   int
	pos    []proto.Position  // of the first len(pos) values in buf
	intern map[string]string // nil: every row its own copy
	limit  int

	lc   bool                             // the last decoded block was LowCardinality
	low  *proto.ColLowCardinality[string] // its decoder, over dict
	dict *strCol
}

var _ proto.ColumnOf[string] = (*strCol)(nil)

func newStrCol() *strCol { return &strCol{intern: map[string]string{}} }

// Infer is called by the decoder with the type the block declares.
func (c *strCol) Infer(t proto.ColumnType) error {
	switch t {
	case proto.ColumnTypeString:
		c.lc = false
	case lowCardinalityString:
		c.lc = true
		if c.low == nil {
			c.dict = newStrCol()
			c.low = proto.NewLowCardinality[string](c.dict)
		}
		c.dict.limit = c.limit
	default:
		return fmt.Errorf("want String or %s, got %s", lowCardinalityString, t)
	}
	return nil
}

func (c *strCol) Type() proto.ColumnType {
	if c.lc {
		return lowCardinalityString
	}
	return proto.ColumnTypeString
}

func (c *strCol) Rows() int {
	if c.lc {
		return c.low.Rows()
	}
	return c.rows
}

// Reset empties the column for rows Go appends (plain String) or decodes.
func (c *strCol) Reset() {
	c.buf, c.pos, c.rows = c.buf[:0], c.pos[:0], 0
	c.lc = false
	if c.low != nil {
		c.low.Reset()
	}
}

func (c *strCol) setLimit(n int) { c.limit = n }

func (c *strCol) Append(v string) {
	c.buf = binary.AppendUvarint(c.buf, uint64(len(v)))
	c.buf = append(c.buf, v...)
	c.rows++
}

func (c *strCol) AppendBytes(v []byte) {
	c.buf = binary.AppendUvarint(c.buf, uint64(len(v)))
	c.buf = append(c.buf, v...)
	c.rows++
}

func (c *strCol) AppendArr(vs []string) {
	for _, v := range vs {
		c.Append(v)
	}
}

// EncodeColumn and WriteColumn write rows Go appended (plain String).
func (c *strCol) EncodeColumn(b *proto.Buffer) { b.PutRaw(c.buf) }
func (c *strCol) WriteColumn(w *proto.Writer)  { w.ChainWrite(c.buf) }

func (c *strCol) DecodeState(r *proto.Reader) error {
	if c.lc {
		return c.low.DecodeState(r)
	}
	return nil
}

func (c *strCol) DecodeColumn(r *proto.Reader, rows int) error {
	if c.lc {
		return c.low.DecodeColumn(r, rows)
	}
	for i := range rows {
		n, err := r.StrLen()
		if err != nil {
			return fmt.Errorf("row %d: %w", i, err)
		}
		if n > c.limit {
			return fmt.Errorf("row %d: a string of %d bytes, more than the input holds", i, n)
		}
		c.buf = binary.AppendUvarint(c.buf, uint64(n))
		start := len(c.buf)
		c.buf = append(c.buf, make([]byte, n)...)
		if err := r.ReadFull(c.buf[start:]); err != nil {
			return fmt.Errorf("row %d: %w", i, err)
		}
		c.pos = append(c.pos, proto.Position{Start: start, End: start + n})
		c.rows++
	}
	return nil
}

// RowBytes is row i's bytes, in buf.
func (c *strCol) RowBytes(i int) []byte {
	if c.lc {
		return []byte(c.low.Values[i])
	}
	for off := c.end(); len(c.pos) <= i; {
		n, k := binary.Uvarint(c.buf[off:])
		start := off + k
		off = start + int(n)
		c.pos = append(c.pos, proto.Position{Start: start, End: off})
	}
	p := c.pos[i]
	return c.buf[p.Start:p.End]
}

// end is where the values with known positions end.
func (c *strCol) end() int {
	if len(c.pos) == 0 {
		return 0
	}
	return c.pos[len(c.pos)-1].End
}

func (c *strCol) Row(i int) string {
	if c.lc {
		return c.low.Values[i] // shared: the dictionary decoded each value once
	}
	return c.share(c.RowBytes(i))
}

// share is b as a string, one copy per value while the column has room for it.
func (c *strCol) share(b []byte) string {
	if c.intern == nil || len(b) == 0 {
		return string(b)
	}
	if s, ok := c.intern[string(b)]; ok { // the lookup does not allocate
		return s
	}
	s := string(b)
	if len(c.intern) < maxInterned {
		c.intern[s] = s
	}
	return s
}
