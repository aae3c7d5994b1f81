package eventlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/ClickHouse/ch-go/proto"
)

// The embedded engine exchanges rows with Go in ClickHouse's Native format, both ways:
// inserts are Native spool files the engine reads (INSERT ... SELECT FROM file()), and
// query results come back Native. ch-go's proto package encodes and decodes the columns.
// A Native stream is a sequence of blocks:
//
//	uvarint column count, uvarint row count,
//	then per column: name and type (uvarint length + bytes each), then the column's data.
//
// The file form carries no BlockInfo and no serialization-kind byte (those belong to the
// client/server protocol): that is protocol version 0 to ch-go.
const nativeVersion = 0

// writeNative writes one block of f to w. The column data go to w from the columns'
// own memory where ch-go can (numbers), without a copy into one big buffer.
func writeNative(w *proto.Writer, f *frame) error {
	input := make(proto.Input, len(f.cols))
	for i, c := range f.cols {
		input[i] = proto.InputColumn{Name: f.names[i], Data: c}
	}
	blk := proto.Block{Columns: len(input), Rows: f.rows()}
	if err := blk.WriteBlock(w, nativeVersion, input); err != nil {
		return err
	}
	_, err := w.Flush()
	return err
}

// readNative decodes the Native stream b into f, calling flush after each block.
func readNative(b []byte, f *frame, flush func()) error {
	for _, c := range f.cols {
		// No count in a block can exceed the bytes b has: a corrupt one is refused
		// before it allocates.
		if bc, ok := c.(bounded); ok {
			bc.setLimit(len(b))
		}
	}
	r := proto.NewReader(bytes.NewReader(b))
	for n := 0; ; n++ {
		cols, err := r.Int()
		if errors.Is(err, io.EOF) { // no byte left: the stream ended between blocks
			return nil
		}
		if err != nil {
			return fmt.Errorf("native block %d: %w", n, err)
		}
		rows, err := r.Int()
		if err != nil {
			return fmt.Errorf("native block %d: %w", n, err)
		}
		if rows < 0 || rows > len(b) || cols != len(f.cols) {
			return fmt.Errorf("native block %d: %d columns of %d rows in %d bytes, want %d columns", n, cols, rows, len(b), len(f.cols))
		}
		for i, c := range f.cols {
			if err := readColumn(r, len(b), f.names[i], c, rows); err != nil {
				return fmt.Errorf("native block %d: column %d: %w", n, i, err)
			}
		}
		if rows > 0 {
			flush()
		}
	}
}

// readColumn decodes one column of a block into c, which must have the given name. A
// column that reads more than one type (Inferable: String or LowCardinality(String))
// learns which one the block holds after it is emptied.
func readColumn(r *proto.Reader, limit int, name string, c colData, rows int) error {
	got, err := readString(r, limit)
	if err != nil {
		return err
	}
	typ, err := readString(r, limit)
	if err != nil {
		return err
	}
	if got != name {
		return fmt.Errorf("named %q, want %q", got, name)
	}
	c.Reset()
	if inf, ok := c.(proto.Inferable); ok {
		if err := inf.Infer(proto.ColumnType(typ)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if c.Type() != proto.ColumnType(typ) {
		return fmt.Errorf("%s: type %s, want %s", name, typ, c.Type())
	}
	if rows == 0 {
		return nil
	}
	if sd, ok := c.(proto.StateDecoder); ok {
		if err := sd.DecodeState(r); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := c.DecodeColumn(r, rows); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// readString reads a column's name or type: no longer than limit.
func readString(r *proto.Reader, limit int) (string, error) {
	n, err := r.StrLen()
	if err != nil {
		return "", err
	}
	if n > limit {
		return "", fmt.Errorf("a name of %d bytes, more than the input holds", n)
	}
	b := make([]byte, n)
	if err := r.ReadFull(b); err != nil {
		return "", err
	}
	return string(b), nil
}
