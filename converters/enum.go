package converters

import (
	"database/sql/driver"
	"fmt"
	"reflect"

	"github.com/jackc/pgx/v5/pgtype"
)

// Enum returns a Converter for the PostgreSQL enum typeName whose values come back as T.
//
// Both formats carry the label as text. Decoded labels are interned: a label known at registration shares one string.
// Labels are not checked against info.EnumLabels, neither when decoding nor when encoding, because labels added with
// ALTER TYPE ... ADD VALUE after registration are valid; the server rejects an unknown label with
// `invalid input value for enum`.
func Enum[T ~string](typeName string) Converter {
	return enumConverter[T]{name: typeName}
}

type enumConverter[T ~string] struct{ name string }

func (c enumConverter[T]) TypeName() string     { return c.name }
func (c enumConverter[T]) GoType() reflect.Type { return reflect.TypeFor[T]() }

func (c enumConverter[T]) Codec(m *pgtype.Map, info TypeInfo) (pgtype.Codec, error) {
	if err := checkKind(fmt.Sprintf("Enum[%s]", c.GoType()), info, 'e'); err != nil {
		return nil, err
	}
	labels := make(map[string]T, len(info.EnumLabels))
	for _, l := range info.EnumLabels {
		labels[l] = T(l)
	}
	text := &pgtype.EnumCodec{} // for targets other than *T: *[]byte, pgtype.TextScanner, ...
	return &valueCodec[T]{
		pgName:    info.Name,
		goType:    c.GoType(),
		binary:    true,
		preferred: pgtype.TextFormatCode,
		decode: func(_ *pgtype.Map, _ int16, src []byte, dst *T) error {
			if v, ok := labels[string(src)]; ok {
				*dst = v
			} else {
				*dst = T(src)
			}
			return nil
		},
		encode: func(_ *pgtype.Map, _ int16, v T, buf []byte) ([]byte, error) {
			return append(buf, v...), nil
		},
		scanOther:   text.PlanScan,
		encodeOther: text.PlanEncode,
		sqlValue: func(_ *pgtype.Map, _ uint32, _ int16, src []byte) (driver.Value, error) {
			return string(src), nil
		},
	}, nil
}
