package converters

import (
	"fmt"
	"reflect"

	"github.com/jackc/pgx/v5/pgtype"
)

// Func returns a Converter for any type, built from a pair of functions over the type's text format: decode turns
// the text PostgreSQL sends into T and encode turns T into text PostgreSQL accepts as input. The codec supports the
// text format only.
//
// SQL NULL is never passed to decode: it gives a nil T when T is a pointer, slice, map or interface and an error
// otherwise (scan into **T or []*T for nullable values). When T is string, pgtype scans and encodes text itself
// without calling decode or encode.
func Func[T any](typeName string, decode func(text string) (T, error), encode func(v T) (string, error)) Converter {
	return funcConverter[T]{name: typeName, decode: decode, encode: encode}
}

type funcConverter[T any] struct {
	name   string
	decode func(string) (T, error)
	encode func(T) (string, error)
}

func (c funcConverter[T]) TypeName() string     { return c.name }
func (c funcConverter[T]) GoType() reflect.Type { return reflect.TypeFor[T]() }

func (c funcConverter[T]) Codec(m *pgtype.Map, info TypeInfo) (pgtype.Codec, error) {
	if c.decode == nil || c.encode == nil {
		return nil, fmt.Errorf("converters: Func[%s] for %s needs both a decode and an encode function", c.GoType(), info.Name)
	}
	return &valueCodec[T]{
		pgName:    info.Name,
		goType:    c.GoType(),
		preferred: pgtype.TextFormatCode,
		decode: func(_ *pgtype.Map, _ int16, src []byte, dst *T) error {
			v, err := c.decode(string(src))
			if err != nil {
				return err
			}
			*dst = v
			return nil
		},
		encode: func(_ *pgtype.Map, _ int16, v T, buf []byte) ([]byte, error) {
			s, err := c.encode(v)
			if err != nil {
				return nil, err
			}
			return append(buf, s...), nil
		},
	}, nil
}
