package pgpurepy

import (
	"database/sql/driver"
	"encoding/binary"
	"fmt"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgpurepy/pgpurepy/internal/wire"
)

// params are one statement's arguments as they go to the server. A session
// keeps one and reuses its buffers from statement to statement.
type params struct {
	values  [][]byte
	formats []int16
	buf     []byte
}

// encode encodes args for parameters of the types oids, each in the format
// its codec prefers, falling back to the other one. An argument that does
// not encode gives an ArgumentError naming it, and nothing is sent.
func (p *params) encode(c *codecs, oids []uint32, args []driver.NamedValue) error {
	p.values = p.values[:0]
	p.formats = p.formats[:0]
	buf := p.buf[:0]
	if buf == nil {
		// pgtype returns nil for NULL; a non-nil buffer keeps an empty
		// value (an empty bytea or text) from looking like one.
		buf = make([]byte, 0, 256)
	}
	for i, a := range args {
		if a.Name != "" {
			return fmt.Errorf("pgpurepy: argument %q: named arguments are not supported, use $1, $2, ... in the SQL", a.Name)
		}
		oid := oids[i]
		if a.Value == nil {
			p.values = append(p.values, nil)
			p.formats = append(p.formats, pgtype.TextFormatCode)
			continue
		}
		start := len(buf)
		if out, format, ok := c.encodeFast(oid, a.Value, buf); ok {
			buf = out
			p.values = append(p.values, buf[start:len(buf):len(buf)])
			p.formats = append(p.formats, format)
			continue
		}
		format := c.tm.FormatCodeForOID(oid)
		out, err := c.tm.Encode(oid, format, a.Value, buf)
		if err != nil {
			format = 1 - format
			out, err = c.tm.Encode(oid, format, a.Value, buf[:start])
		}
		if err != nil {
			return &ArgumentError{Position: i + 1, GoType: fmt.Sprintf("%T", a.Value), PgType: c.typeName(oid), Err: err}
		}
		if out == nil {
			p.values = append(p.values, nil)
		} else {
			buf = out
			p.values = append(p.values, buf[start:len(buf):len(buf)])
		}
		p.formats = append(p.formats, format)
	}
	p.buf = buf
	return nil
}

// sent lets go of a large argument's buffer once the statement is on its
// way (see wire.KeepBufMax); smaller ones are kept for the next statement.
func (p *params) sent() {
	if cap(p.buf) > wire.KeepBufMax {
		p.buf = nil
		clear(p.values)
	}
}

// encodeFast appends the commonest arguments, Go integers for integer
// parameters and strings for text ones, in the format pgtype would choose,
// without pgtype's plan lookup (which boxes every int it encodes). ok is
// false when it does not apply; an integer out of its parameter's range is
// left to pgtype, which names the error.
func (c *codecs) encodeFast(oid uint32, v any, buf []byte) (out []byte, format int16, ok bool) {
	if _, conv := c.converted[oid]; conv {
		return nil, 0, false
	}
	var n int64
	switch x := v.(type) {
	case int64:
		n = x
	case int:
		n = int64(x)
	case int32:
		n = int64(x)
	case string:
		if oid == pgtype.TextOID || oid == pgtype.VarcharOID {
			return append(buf, x...), pgtype.TextFormatCode, true
		}
		return nil, 0, false
	default:
		return nil, 0, false
	}
	switch {
	case oid == pgtype.Int8OID:
		return binary.BigEndian.AppendUint64(buf, uint64(n)), pgtype.BinaryFormatCode, true
	case oid == pgtype.Int4OID && n == int64(int32(n)):
		return binary.BigEndian.AppendUint32(buf, uint32(n)), pgtype.BinaryFormatCode, true
	case oid == pgtype.Int2OID && n == int64(int16(n)):
		return binary.BigEndian.AppendUint16(buf, uint16(n)), pgtype.BinaryFormatCode, true
	}
	return nil, 0, false
}
