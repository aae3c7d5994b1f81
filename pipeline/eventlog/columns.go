package eventlog

import (
	"strings"
	"sync"

	"github.com/ClickHouse/ch-go/proto"
)

// A table's columns are listed once (tables.go), as column values in table order. The
// rest is derived from that list: the DDL, the INSERT and SELECT lists, the structure of
// the embedded engine's Native spool files, and the moves between a Go row and a column
// for both engines. Column data are ch-go's Native columns (ch-go/proto): chDB reads and
// writes them as Native blocks; the server driver (clickhouse-go) takes and gives their
// rows as Go values.

// colData is one column's values for a block of rows, as an engine sees it.
type colData interface {
	proto.Column
	// value is row i as the server driver appends it.
	value(i int) any
	// scan is where the server driver scans one value; putScanned appends it.
	scan() any
	putScanned()
}

// field is a column's values for rows of R.
type field[R any] interface {
	colData
	put(rows []R)    // append the rows' values
	get(i int, r *R) // store row i's value in r
}

// column is one column of rows R.
type column[R any] struct {
	name string
	typ  string // as the DDL declares it (LowCardinality, codecs)
	expr string // what a SELECT reads, for computed results; the name when ""
	new  func() field[R]
}

// selectExpr is the column's entry in a SELECT list.
func (c column[R]) selectExpr() string {
	if c.expr == "" {
		return c.name
	}
	return c.expr + " AS " + c.name
}

// table is a list of columns and the blocks that carry its rows.
type table[R any] struct {
	name string // "" for a query result
	cols []column[R]
	// free keeps a few emptied blocks with their memory for the next batch. (A
	// sync.Pool loses them at every other collection, and a batch of events allocates
	// enough to collect often: regrowing 40 columns cost more than encoding them.)
	free chan *block[R]

	structure func() string
}

// keptRows is the most rows a block may have held and still be kept for reuse, so one
// huge batch does not pin its memory for the life of the process.
const keptRows = 1 << 18

func newTable[R any](name string, cols ...column[R]) *table[R] {
	t := &table[R]{name: name, cols: cols, free: make(chan *block[R], 2)}
	t.structure = sync.OnceValue(t.nativeStructure)
	return t
}

// names is the column list of an INSERT.
func (t *table[R]) names() string {
	s := make([]string, len(t.cols))
	for i, c := range t.cols {
		s[i] = c.name
	}
	return strings.Join(s, ", ")
}

// selectList is what a SELECT of these columns reads.
func (t *table[R]) selectList() string {
	s := make([]string, len(t.cols))
	for i, c := range t.cols {
		s[i] = c.selectExpr()
	}
	return strings.Join(s, ", ")
}

// nativeTypes are the columns' types as Go sends them in Native: LowCardinality travels
// as its plain type (the INSERT converts) and codecs stay with the table.
func (t *table[R]) nativeTypes() []string {
	b := t.block()
	defer t.release(b)
	types := make([]string, len(t.cols))
	for i, f := range b.fields {
		types[i] = string(f.Type())
	}
	return types
}

// nativeStructure is the structure of a Native stream of these columns, as file() wants it.
func (t *table[R]) nativeStructure() string {
	types := t.nativeTypes()
	s := make([]string, len(t.cols))
	for i, c := range t.cols {
		s[i] = c.name + " " + types[i]
	}
	return strings.Join(s, ", ")
}

// block is one block of rows of R, column by column.
type block[R any] struct {
	fields []field[R]
	frame  frame
}

func (t *table[R]) block() *block[R] {
	select {
	case b := <-t.free:
		b.reset()
		return b
	default:
	}
	b := &block[R]{fields: make([]field[R], len(t.cols))}
	b.frame.names = make([]string, len(t.cols))
	b.frame.cols = make([]colData, len(t.cols))
	for i, c := range t.cols {
		b.fields[i] = c.new()
		b.frame.names[i], b.frame.cols[i] = c.name, b.fields[i]
	}
	return b
}

func (t *table[R]) release(b *block[R]) {
	if b.frame.rows() > keptRows {
		return
	}
	select {
	case t.free <- b:
	default:
	}
}

func (b *block[R]) reset() {
	for _, f := range b.fields {
		f.Reset()
	}
}

// putChunk is how many rows are appended one column at a time: few enough that they stay
// in the CPU cache while every column takes its value from them, enough that the call
// per column and chunk costs nothing.
const putChunk = 256

// put appends rows.
func (b *block[R]) put(rows []R) {
	for len(rows) > 0 {
		n := min(len(rows), putChunk)
		for _, f := range b.fields {
			f.put(rows[:n])
		}
		rows = rows[n:]
	}
}

// appendTo appends the block's rows to out.
func (b *block[R]) appendTo(out []R) []R {
	n := b.frame.rows()
	start := len(out)
	out = append(out, make([]R, n)...)
	for _, f := range b.fields {
		for i := range n {
			f.get(i, &out[start+i])
		}
	}
	return out
}

// frame is a block as an engine sees it: named columns, no row type.
type frame struct {
	names []string
	cols  []colData
}

func (f *frame) rows() int {
	if len(f.cols) == 0 {
		return 0
	}
	return f.cols[0].Rows()
}
