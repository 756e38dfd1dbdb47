package converters

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/jackc/pgx/v5/pgtype"
)

// JSON returns a Converter for json or jsonb, or a domain over either, whose values are decoded into T with
// encoding/json and encoded from T with json.Marshal.
//
// Registering JSON[T]("jsonb") makes every jsonb column of the connection decode into T; use a domain over jsonb to
// give one shape of document its own type. When T is string or []byte, values are the JSON text unchanged (as pgtype
// does), not a JSON string literal or base64. A JSON null decodes into the zero T; SQL NULL decodes into a nil T
// when T is a pointer, slice, map or interface and is an error otherwise. Both formats are supported; jsonb's binary
// format is its text behind a version byte.
func JSON[T any](typeName string) Converter {
	return jsonConverter[T]{name: typeName}
}

type jsonConverter[T any] struct{ name string }

func (c jsonConverter[T]) TypeName() string     { return c.name }
func (c jsonConverter[T]) GoType() reflect.Type { return reflect.TypeFor[T]() }

// jsonKinder is implemented by the codecs of this package that are json or jsonb underneath.
type jsonKinder interface{ jsonKindOf() byte }

func (c *valueCodec[T]) jsonKindOf() byte { return c.jsonKind }

func jsonKindOfOID(m *pgtype.Map, oid uint32) byte {
	switch oid {
	case pgtype.JSONOID:
		return 'j'
	case pgtype.JSONBOID:
		return 'b'
	}
	t, ok := m.TypeForOID(oid)
	if !ok {
		return 0
	}
	switch codec := t.Codec.(type) {
	case *pgtype.JSONCodec:
		return 'j'
	case *pgtype.JSONBCodec:
		return 'b'
	case jsonKinder:
		return codec.jsonKindOf()
	}
	return 0
}

func (c jsonConverter[T]) Codec(m *pgtype.Map, info TypeInfo) (pgtype.Codec, error) {
	kind := jsonKindOfOID(m, info.OID)
	if kind == 0 && info.Kind == 'd' {
		kind = jsonKindOfOID(m, info.BaseOID)
	}
	if kind == 0 {
		return nil, fmt.Errorf("converters: JSON[%s] used on %s, which is not json, jsonb or a domain over them", c.GoType(), info.Name)
	}

	var inner pgtype.Codec // for targets other than *T and values other than T
	if kind == 'b' {
		inner = &pgtype.JSONBCodec{Marshal: json.Marshal, Unmarshal: json.Unmarshal}
	} else {
		inner = &pgtype.JSONCodec{Marshal: json.Marshal, Unmarshal: json.Unmarshal}
	}
	if t := c.GoType(); t == reflect.TypeFor[string]() || t == reflect.TypeFor[[]byte]() {
		// The raw JSON text, as pgtype gives it; the Map hands *string to the raw text path before any codec.
		return inner, nil
	}
	return &valueCodec[T]{
		pgName:    info.Name,
		goType:    c.GoType(),
		binary:    true,
		preferred: pgtype.TextFormatCode,
		jsonKind:  kind,
		decode: func(_ *pgtype.Map, format int16, src []byte, dst *T) error {
			if kind == 'b' && format == pgtype.BinaryFormatCode {
				if len(src) == 0 || src[0] != 1 {
					return fmt.Errorf("unknown jsonb binary format version")
				}
				src = src[1:]
			}
			var zero T
			*dst = zero
			return json.Unmarshal(src, dst)
		},
		encode: func(_ *pgtype.Map, format int16, v T, buf []byte) ([]byte, error) {
			b, err := json.Marshal(v)
			if err != nil {
				return nil, err
			}
			if kind == 'b' && format == pgtype.BinaryFormatCode {
				buf = append(buf, 1)
			}
			return append(buf, b...), nil
		},
		scanOther:   inner.PlanScan,
		encodeOther: inner.PlanEncode,
		sqlValue:    inner.DecodeDatabaseSQLValue,
	}, nil
}
