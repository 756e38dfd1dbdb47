package converters

import (
	"database/sql/driver"
	"fmt"
	"reflect"

	"github.com/jackc/pgx/v5/pgtype"
)

// valueCodec is the pgtype.Codec behind Enum, JSON, Composite and Func. It scans into *T (and *any) and encodes T
// itself, with errors that name the PostgreSQL type and the Go type; other targets and values go to the optional
// scanOther and encodeOther hooks, or back to the Map's generic wrappers (which is how **T, []T and []*T work).
//
// A valueCodec is immutable once built, as pgtype requires of registered codecs.
type valueCodec[T any] struct {
	pgName    string
	goType    reflect.Type
	binary    bool  // binary format supported (text always is)
	preferred int16 // preferred format

	// decode decodes src, which is not NULL, into *dst.
	decode func(m *pgtype.Map, format int16, src []byte, dst *T) error
	// encode appends the encoding of v to buf.
	encode func(m *pgtype.Map, format int16, v T, buf []byte) ([]byte, error)

	// Optional.
	scanOther   func(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan
	encodeOther func(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan
	sqlValue    func(m *pgtype.Map, oid uint32, format int16, src []byte) (driver.Value, error)
	jsonKind    byte // 'j' json, 'b' jsonb, 0 otherwise; lets JSON find json through domains
}

var _ pgtype.Codec = (*valueCodec[int])(nil)

func (c *valueCodec[T]) FormatSupported(format int16) bool {
	return format == pgtype.TextFormatCode || (format == pgtype.BinaryFormatCode && c.binary)
}

func (c *valueCodec[T]) PreferredFormat() int16 { return c.preferred }

func (c *valueCodec[T]) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if !c.FormatSupported(format) {
		return nil
	}
	if _, ok := value.(T); ok {
		return &valueEncodePlan[T]{c: c, m: m, format: format}
	}
	if c.encodeOther != nil {
		return c.encodeOther(m, oid, format, value)
	}
	return nil
}

func (c *valueCodec[T]) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if !c.FormatSupported(format) {
		return nil
	}
	switch target.(type) {
	case *T: // first: when T is any, *T and *any are the same type
		return &valueScanPlan[T]{c: c, m: m, format: format}
	case *any:
		return &anyScanPlan[T]{c: c, m: m, format: format}
	}
	if c.scanOther != nil {
		return c.scanOther(m, oid, format, target)
	}
	return nil
}

func (c *valueCodec[T]) DecodeDatabaseSQLValue(m *pgtype.Map, oid uint32, format int16, src []byte) (driver.Value, error) {
	if src == nil {
		return nil, nil
	}
	if c.sqlValue != nil {
		return c.sqlValue(m, oid, format, src)
	}
	if format == pgtype.TextFormatCode {
		return string(src), nil
	}
	return append([]byte(nil), src...), nil
}

func (c *valueCodec[T]) DecodeValue(m *pgtype.Map, oid uint32, format int16, src []byte) (any, error) {
	if src == nil {
		return nil, nil
	}
	var v T
	if err := c.decodeNotNull(m, format, src, &v); err != nil {
		return nil, err
	}
	return v, nil
}

func (c *valueCodec[T]) decodeNotNull(m *pgtype.Map, format int16, src []byte, dst *T) error {
	if !c.FormatSupported(format) {
		return fmt.Errorf("converters: cannot decode %s into %s: format %d not supported", c.pgName, c.goType, format)
	}
	if err := c.decode(m, format, src, dst); err != nil {
		return fmt.Errorf("converters: cannot decode %s into %s: %w", c.pgName, c.goType, err)
	}
	return nil
}

type valueScanPlan[T any] struct {
	c      *valueCodec[T]
	m      *pgtype.Map
	format int16
}

func (p *valueScanPlan[T]) Scan(src []byte, target any) error {
	dst, ok := target.(*T)
	if !ok || dst == nil {
		return fmt.Errorf("converters: cannot decode %s into %T", p.c.pgName, target)
	}
	if src == nil {
		if nilable(p.c.goType) {
			var zero T
			*dst = zero
			return nil
		}
		return fmt.Errorf("converters: cannot decode NULL %s into %s", p.c.pgName, p.c.goType)
	}
	return p.c.decodeNotNull(p.m, p.format, src, dst)
}

type anyScanPlan[T any] struct {
	c      *valueCodec[T]
	m      *pgtype.Map
	format int16
}

func (p *anyScanPlan[T]) Scan(src []byte, target any) error {
	dst := target.(*any)
	if src == nil {
		*dst = nil
		return nil
	}
	var v T
	if err := p.c.decodeNotNull(p.m, p.format, src, &v); err != nil {
		return err
	}
	*dst = v
	return nil
}

type valueEncodePlan[T any] struct {
	c      *valueCodec[T]
	m      *pgtype.Map
	format int16
}

func (p *valueEncodePlan[T]) Encode(value any, buf []byte) ([]byte, error) {
	v, ok := value.(T)
	if !ok {
		return nil, fmt.Errorf("converters: cannot encode %T as %s", value, p.c.pgName)
	}
	newBuf, err := p.c.encode(p.m, p.format, v, buf)
	if err != nil {
		return nil, fmt.Errorf("converters: cannot encode %s as %s: %w", p.c.goType, p.c.pgName, err)
	}
	if newBuf == nil {
		// A nil result means NULL to pgtype; an empty value (e.g. '' for a text-like type) is not NULL.
		newBuf = []byte{}
	}
	return newBuf, nil
}
