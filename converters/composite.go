package converters

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// Composite returns a Converter for the composite (row) type typeName whose values come back as the struct T.
//
// # Matching attributes to fields
//
// Only exported fields take part, and a field tagged `db:"-"` is skipped. When no field has a db tag, the type's
// attributes map to the fields in order and their counts must be equal. When any field has one, each attribute maps to
// the field tagged with its name (the tag up to a comma), or else to the untagged field whose Go name equals it ignoring
// case; every attribute needs exactly one field and every field exactly one attribute. Embedded structs are fields
// like any other (they are not flattened). A mismatch is an error from Register, not from a later query.
//
// # NULL
//
// A NULL attribute needs a field that can hold it: a pointer, a sql.Null* type or a pgtype type (pgtype.Text, ...);
// scanning NULL into a string or int field is an error naming the attribute. A NULL composite value is an error when
// scanning into T; scan into **T, or []*T for arrays, to get nil. Nil pointers encode as NULL attributes.
//
// # Attribute types
//
// Each attribute is decoded and encoded by the codec the connection's pgtype.Map has for its type OID, so a
// composite whose attributes are enums, domains or other composites needs those registered first. An attribute type
// that is not registered still works in the text format for targets pgtype can fill from text (string,
// sql.Scanner, pgtype.TextScanner), and then the composite uses the text format only. Both formats are supported when
// every attribute type supports binary.
func Composite[T any](typeName string) Converter {
	return compositeConverter[T]{name: typeName}
}

type compositeConverter[T any] struct{ name string }

func (c compositeConverter[T]) TypeName() string     { return c.name }
func (c compositeConverter[T]) GoType() reflect.Type { return reflect.TypeFor[T]() }

// compositeField is one attribute and the struct field it maps to.
type compositeField struct {
	name  string // attribute name
	oid   uint32
	index int // struct field index
}

func (c compositeConverter[T]) Codec(m *pgtype.Map, info TypeInfo) (pgtype.Codec, error) {
	goType := c.GoType()
	conv := fmt.Sprintf("Composite[%s]", goType)
	if err := checkKind(conv, info, 'c'); err != nil {
		return nil, err
	}
	if goType.Kind() != reflect.Struct {
		return nil, fmt.Errorf("converters: %s for %s: %s is not a struct", conv, info.Name, goType)
	}
	if len(info.Fields) == 0 {
		return nil, fmt.Errorf("converters: composite type %s has no attributes", info.Name)
	}
	fields, err := matchFields(goType, info)
	if err != nil {
		return nil, err
	}

	binary := true
	known := make([]pgtype.CompositeCodecField, 0, len(fields))
	for _, f := range fields {
		t, ok := m.TypeForOID(f.oid)
		if !ok {
			binary = false
			continue
		}
		if !t.Codec.FormatSupported(pgtype.BinaryFormatCode) {
			binary = false
		}
		known = append(known, pgtype.CompositeCodecField{Name: f.name, Type: t})
	}
	preferred := int16(pgtype.TextFormatCode)
	if binary {
		preferred = pgtype.BinaryFormatCode
	}

	vc := &valueCodec[T]{
		pgName:    info.Name,
		goType:    goType,
		binary:    binary,
		preferred: preferred,
		decode: func(m *pgtype.Map, format int16, src []byte, dst *T) error {
			var v T // so that *dst is left alone on error
			rv := reflect.ValueOf(&v).Elem()
			var err error
			if format == pgtype.BinaryFormatCode {
				err = decodeCompositeBinary(m, fields, src, rv)
			} else {
				err = decodeCompositeText(m, fields, src, rv)
			}
			if err != nil {
				return err
			}
			*dst = v
			return nil
		},
		encode: func(m *pgtype.Map, format int16, v T, buf []byte) ([]byte, error) {
			rv := reflect.ValueOf(v)
			if format == pgtype.BinaryFormatCode {
				b := pgtype.NewCompositeBinaryBuilder(m, buf)
				for _, f := range fields {
					b.AppendValue(f.oid, rv.Field(f.index).Interface())
				}
				return b.Finish()
			}
			b := pgtype.NewCompositeTextBuilder(m, buf)
			for _, f := range fields {
				b.AppendValue(f.oid, rv.Field(f.index).Interface())
			}
			return b.Finish()
		},
	}
	if len(known) == len(fields) {
		// pgtype.CompositeFields and other CompositeIndexScanner/Getter values.
		inner := &pgtype.CompositeCodec{Fields: known}
		vc.scanOther = inner.PlanScan
		vc.encodeOther = inner.PlanEncode
	}
	return vc, nil
}

// matchFields maps the attributes of info to the fields of the struct type t.
func matchFields(t reflect.Type, info TypeInfo) ([]compositeField, error) {
	type structField struct {
		index  int
		name   string // db tag, or Go name
		tagged bool
		used   bool
	}
	var sfs []structField
	tagMode := false
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(sf.Tag.Get("db"), ",")
		if tag == "-" {
			continue
		}
		if tag != "" {
			tagMode = true
			sfs = append(sfs, structField{index: i, name: tag, tagged: true})
		} else {
			sfs = append(sfs, structField{index: i, name: sf.Name})
		}
	}

	fields := make([]compositeField, len(info.Fields))
	if !tagMode {
		if len(sfs) != len(info.Fields) {
			return nil, fmt.Errorf("converters: composite type %s has %d attributes but struct %s has %d fields",
				info.Name, len(info.Fields), t, len(sfs))
		}
		for i, a := range info.Fields {
			fields[i] = compositeField{name: a.Name, oid: a.OID, index: sfs[i].index}
		}
		return fields, nil
	}

	var problems []string
	for i, a := range info.Fields {
		match := -1
		for j, sf := range sfs { // a tag match wins over a name match
			if sf.tagged && sf.name == a.Name {
				match = j
				break
			}
		}
		if match < 0 {
			for j, sf := range sfs {
				if !sf.tagged && strings.EqualFold(sf.name, a.Name) {
					if match >= 0 {
						problems = append(problems, fmt.Sprintf("attribute %s matches fields %s and %s",
							a.Name, t.Field(sfs[match].index).Name, t.Field(sf.index).Name))
					}
					match = j
				}
			}
		}
		switch {
		case match < 0:
			problems = append(problems, fmt.Sprintf("attribute %s has no field", a.Name))
			continue
		case sfs[match].used:
			problems = append(problems, fmt.Sprintf("field %s matches more than one attribute", t.Field(sfs[match].index).Name))
		}
		sfs[match].used = true
		fields[i] = compositeField{name: a.Name, oid: a.OID, index: sfs[match].index}
	}
	for _, sf := range sfs {
		if !sf.used {
			problems = append(problems, fmt.Sprintf("field %s has no attribute", t.Field(sf.index).Name))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("converters: composite type %s does not match struct %s: %s", info.Name, t, strings.Join(problems, "; "))
	}
	return fields, nil
}

func scanCompositeField(m *pgtype.Map, format int16, f compositeField, src []byte, rv reflect.Value) error {
	target := rv.Field(f.index).Addr().Interface()
	if err := m.PlanScan(f.oid, format, target).Scan(src, target); err != nil {
		return fmt.Errorf("attribute %s: %w", f.name, err)
	}
	return nil
}

func decodeCompositeText(m *pgtype.Map, fields []compositeField, src []byte, rv reflect.Value) error {
	s := pgtype.NewCompositeTextScanner(m, src)
	for i, f := range fields {
		if !s.Next() {
			if err := s.Err(); err != nil {
				return err
			}
			return fmt.Errorf("got %d attributes, want %d", i, len(fields))
		}
		if err := scanCompositeField(m, pgtype.TextFormatCode, f, s.Bytes(), rv); err != nil {
			return err
		}
	}
	if s.Next() {
		return fmt.Errorf("got more than %d attributes", len(fields))
	}
	return s.Err()
}

func decodeCompositeBinary(m *pgtype.Map, fields []compositeField, src []byte, rv reflect.Value) error {
	s := pgtype.NewCompositeBinaryScanner(m, src)
	if err := s.Err(); err != nil {
		return err
	}
	if s.FieldCount() != len(fields) {
		return fmt.Errorf("got %d attributes, want %d", s.FieldCount(), len(fields))
	}
	for i, f := range fields {
		if !s.Next() {
			if err := s.Err(); err != nil {
				return err
			}
			return fmt.Errorf("got %d attributes, want %d", i, len(fields))
		}
		if s.OID() != f.oid {
			return fmt.Errorf("attribute %s has type OID %d, want %d", f.name, s.OID(), f.oid)
		}
		if err := scanCompositeField(m, pgtype.BinaryFormatCode, f, s.Bytes(), rv); err != nil {
			return err
		}
	}
	if s.Next() {
		return fmt.Errorf("got more than %d attributes", len(fields))
	}
	return s.Err()
}
