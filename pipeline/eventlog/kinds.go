package eventlog

import (
	"fmt"
	"strings"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
)

// The kinds of column a table is made of: each pairs a ch-go column with how a row's Go
// value goes in and out of it.

// at is a column whose Go value is the field ref points at: numbers or Bool.
func at[R, T any](name, typ string, ref func(*R) *T) column[R] {
	off := fieldOffset(ref)
	return column[R]{name: name, typ: typ, new: func() field[R] {
		c, vals := newColumnOf[T]()
		return &scalar[R, T]{ColumnOf: c, vals: vals, ref: ref, off: off}
	}}
}

// fieldOffset is where in R the field ref points at is: a column reads that field
// straight from each row, where calling ref for every value cost more than all the rest
// of encoding (BenchmarkNativeEncode). ref itself stays the definition; the offset is
// found by calling it, so it cannot name another field.
func fieldOffset[R, T any](ref func(*R) *T) uintptr {
	var r R
	p := uintptr(unsafe.Pointer(ref(&r))) - uintptr(unsafe.Pointer(&r))
	if p+unsafe.Sizeof(*new(T)) > unsafe.Sizeof(r) {
		panic("eventlog: a column's field is not inside its row")
	}
	return p
}

// newColumnOf is ch-go's column for values of T, and the slice it is, where it is one
// (numbers): appending to it directly saves a dynamic call per value.
func newColumnOf[T any]() (proto.ColumnOf[T], *[]T) {
	var c, s any
	switch any(*new(T)).(type) {
	case uint8:
		col := new(proto.ColUInt8)
		c, s = col, (*[]uint8)(col)
	case uint16:
		col := new(proto.ColUInt16)
		c, s = col, (*[]uint16)(col)
	case uint32:
		col := new(proto.ColUInt32)
		c, s = col, (*[]uint32)(col)
	case uint64:
		col := new(proto.ColUInt64)
		c, s = col, (*[]uint64)(col)
	case int32:
		col := new(proto.ColInt32)
		c, s = col, (*[]int32)(col)
	case int64:
		col := new(proto.ColInt64)
		c, s = col, (*[]int64)(col)
	case bool:
		c = new(colBool)
	default:
		panic(fmt.Sprintf("eventlog: no column for %T", *new(T)))
	}
	vals, _ := s.(*[]T)
	return c.(proto.ColumnOf[T]), vals
}

type scalar[R, T any] struct {
	proto.ColumnOf[T]
	vals *[]T // the column itself, when it is a []T
	ref  func(*R) *T
	off  uintptr // of the field in R
	tmp  T
}

func (f *scalar[R, T]) put(rows []R) {
	if f.vals == nil {
		for i := range rows {
			f.Append(*f.ref(&rows[i]))
		}
		return
	}
	v := *f.vals
	for i := range rows {
		v = append(v, *(*T)(unsafe.Add(unsafe.Pointer(&rows[i]), f.off)))
	}
	*f.vals = v
}
func (f *scalar[R, T]) get(i int, r *R) { *f.ref(r) = f.Row(i) }
func (f *scalar[R, T]) value(i int) any { return f.Row(i) }
func (f *scalar[R, T]) scan() any       { return &f.tmp }
func (f *scalar[R, T]) putScanned()     { f.Append(f.tmp) }

// colBool is Bool decoded as bytes: any byte that is not 0 is true, so a corrupt byte
// cannot become a Go bool that is neither.
type colBool struct{ proto.ColUInt8 }

func (c colBool) Type() proto.ColumnType { return proto.ColumnTypeBool }
func (c colBool) Row(i int) bool         { return c.ColUInt8[i] != 0 }
func (c *colBool) Append(v bool)         { c.ColUInt8.Append(boolByte(v)) }
func (c *colBool) AppendArr(vs []bool) {
	for _, v := range vs {
		c.Append(v)
	}
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// conv is a column of T whose Go value is converted on the way in and out.
func conv[R, T any](name, typ string, load func(*R) T, store func(*R, T)) column[R] {
	return column[R]{name: name, typ: typ, new: func() field[R] {
		c, vals := newColumnOf[T]()
		return &converted[R, T]{ColumnOf: c, vals: vals, load: load, store: store}
	}}
}

type converted[R, T any] struct {
	proto.ColumnOf[T]
	vals  *[]T
	load  func(*R) T
	store func(*R, T)
	tmp   T
}

func (f *converted[R, T]) put(rows []R) {
	if f.vals == nil {
		for i := range rows {
			f.Append(f.load(&rows[i]))
		}
		return
	}
	v := *f.vals
	for i := range rows {
		v = append(v, f.load(&rows[i]))
	}
	*f.vals = v
}
func (f *converted[R, T]) get(i int, r *R) { f.store(r, f.Row(i)) }
func (f *converted[R, T]) value(i int) any { return f.Row(i) }
func (f *converted[R, T]) scan() any       { return &f.tmp }
func (f *converted[R, T]) putScanned()     { f.Append(f.tmp) }

// str is a String column. A LowCardinality one shares one copy of each value it decodes
// among its rows.
func str[R any](name, typ string, ref func(*R) *string) column[R] {
	lc := strings.HasPrefix(typ, "LowCardinality")
	off := fieldOffset(ref)
	return column[R]{name: name, typ: typ, new: func() field[R] {
		f := &text[R]{strCol: newStrCol(), ref: ref, off: off}
		if !lc {
			f.intern = nil
		}
		return f
	}}
}

type text[R any] struct {
	*strCol
	ref func(*R) *string
	off uintptr
	tmp string
}

func (f *text[R]) put(rows []R) {
	for i := range rows {
		f.Append(*(*string)(unsafe.Add(unsafe.Pointer(&rows[i]), f.off)))
	}
}
func (f *text[R]) get(i int, r *R) { *f.ref(r) = f.Row(i) }
func (f *text[R]) value(i int) any { return f.Row(i) }
func (f *text[R]) scan() any       { return &f.tmp }
func (f *text[R]) putScanned()     { f.Append(f.tmp) }

// blob is a String column holding bytes; empty reads back as nil.
func blob[R any](name, typ string, ref func(*R) *[]byte) column[R] {
	return column[R]{name: name, typ: typ, new: func() field[R] {
		f := &blobField[R]{strCol: newStrCol(), ref: ref}
		f.intern = nil
		return f
	}}
}

type blobField[R any] struct {
	*strCol
	ref func(*R) *[]byte
	tmp string
}

func (f *blobField[R]) put(rows []R) {
	for i := range rows {
		f.AppendBytes(*f.ref(&rows[i]))
	}
}
func (f *blobField[R]) get(i int, r *R) {
	var v []byte
	if b := f.RowBytes(i); len(b) > 0 {
		v = append([]byte(nil), b...)
	}
	*f.ref(r) = v
}
func (f *blobField[R]) value(i int) any { return string(f.RowBytes(i)) }
func (f *blobField[R]) scan() any       { return &f.tmp }
func (f *blobField[R]) putScanned()     { f.Append(f.tmp) }

// ipv6 is an IPv6 column (16 bytes, network order).
func ipv6[R any](name, typ string, load func(*R) [16]byte, store func(*R, [16]byte)) column[R] {
	return column[R]{name: name, typ: typ, new: func() field[R] { return &ipField[R]{load: load, store: store} }}
}

type ipField[R any] struct {
	proto.ColIPv6
	load  func(*R) [16]byte
	store func(*R, [16]byte)
	tmp   [16]byte
}

func (f *ipField[R]) put(rows []R) {
	for i := range rows {
		f.ColIPv6 = append(f.ColIPv6, f.load(&rows[i]))
	}
}
func (f *ipField[R]) get(i int, r *R) { f.store(r, f.Row(i)) }

// value is a plain [16]byte: the driver does not know ch-go's IPv6 type.
func (f *ipField[R]) value(i int) any { return [16]byte(f.Row(i)) }
func (f *ipField[R]) scan() any       { return &f.tmp }
func (f *ipField[R]) putScanned()     { f.Append(f.tmp) }

// strMap is a Map(String, String) column; an empty map reads back as nil.
func strMap[R any](name, typ string, ref func(*R) *map[string]string) column[R] {
	return column[R]{name: name, typ: typ, new: func() field[R] {
		f := &mapField[R]{keys: newStrCol(), values: newStrCol(), ref: ref}
		f.values.intern = nil // values are IDs: rarely repeated
		f.ColMap = proto.ColMap[string, string]{Keys: f.keys, Values: f.values}
		return f
	}}
}

type mapField[R any] struct {
	proto.ColMap[string, string]
	keys, values *strCol
	ref          func(*R) *map[string]string
	tmp          map[string]string
	limit        int
}

func (f *mapField[R]) put(rows []R) {
	for i := range rows {
		for k, v := range *f.ref(&rows[i]) {
			f.keys.Append(k)
			f.values.Append(v)
		}
		f.Offsets = append(f.Offsets, uint64(f.keys.Rows()))
	}
}

func (f *mapField[R]) get(i int, r *R) {
	start := uint64(0)
	if i > 0 {
		start = f.Offsets[i-1]
	}
	end := f.Offsets[i]
	if end <= start {
		*f.ref(r) = nil
		return
	}
	m := make(map[string]string, end-start)
	for j := int(start); j < int(end); j++ {
		m[f.keys.Row(j)] = f.values.Row(j)
	}
	*f.ref(r) = m
}

// value is never nil: the driver refuses a nil map.
func (f *mapField[R]) value(i int) any {
	m := f.Row(i)
	if m == nil {
		m = map[string]string{}
	}
	return m
}
func (f *mapField[R]) scan() any   { f.tmp = nil; return &f.tmp }
func (f *mapField[R]) putScanned() { f.Append(f.tmp) }

func (f *mapField[R]) setLimit(n int) {
	f.limit = n
	f.keys.setLimit(n)
	f.values.setLimit(n)
}

// DecodeColumn checks what ch-go leaves to the caller: offsets that only grow, and no
// more pairs than the input could hold (a corrupt count must not allocate gigabytes).
func (f *mapField[R]) DecodeColumn(r *proto.Reader, rows int) error {
	if rows == 0 {
		return nil
	}
	if err := f.Offsets.DecodeColumn(r, rows); err != nil {
		return fmt.Errorf("offsets: %w", err)
	}
	prev := uint64(0)
	for _, o := range f.Offsets {
		if o < prev {
			return fmt.Errorf("map offsets decrease (%d after %d)", o, prev)
		}
		prev = o
	}
	if prev > uint64(f.limit) {
		return fmt.Errorf("map claims %d pairs, more than the input holds", prev)
	}
	if err := f.keys.DecodeColumn(r, int(prev)); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if err := f.values.DecodeColumn(r, int(prev)); err != nil {
		return fmt.Errorf("values: %w", err)
	}
	return nil
}

// bounded is a column whose decoding needs to know how large the input is: no count it
// reads (rows, bytes, pairs) can exceed the input's length in bytes.
type bounded interface{ setLimit(n int) }
