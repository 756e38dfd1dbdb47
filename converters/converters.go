package converters

import (
	"fmt"
	"reflect"

	"github.com/jackc/pgx/v5/pgtype"
)

// TypeInfo describes a PostgreSQL type as read from the catalog by the root package.
type TypeInfo struct {
	Name       string   // the name the converter asked for (possibly schema-qualified)
	OID        uint32   // pg_type.oid
	ArrayOID   uint32   // pg_type.typarray; 0 when the type has no array type
	Kind       byte     // pg_type.typtype: 'b' base, 'c' composite, 'd' domain, 'e' enum, 'r' range ...
	BaseOID    uint32   // domains: typbasetype
	Fields     []Field  // composites: attribute names and type OIDs in attnum order (dropped columns excluded)
	EnumLabels []string // enums, in sort order

	// Delimiter is pg_type.typdelim, the character that separates elements in the text form of the type's array.
	// Zero means ',' (the delimiter of every built-in type except box).
	Delimiter byte
}

// Field is one attribute of a composite type.
type Field struct {
	Name string
	OID  uint32
}

// Converter describes one PostgreSQL type by name and how its values map to a Go type.
type Converter interface {
	// TypeName returns the PostgreSQL type name as the user wrote it. It is resolved with ::regtype, so search_path
	// applies and schema-qualified names work.
	TypeName() string

	// GoType returns the Go type values of the type come back as.
	GoType() reflect.Type

	// Codec returns the pgtype codec for the type described by info. m holds the connection's already registered
	// types (needed for composite fields and a domain's base type). It errors when info does not fit the converter
	// (e.g. Enum used on a non-enum type, composite field count differs from the struct).
	Codec(m *pgtype.Map, info TypeInfo) (pgtype.Codec, error)
}

// Register registers c on m for info.OID and, when withArray is set, an array codec for info.ArrayOID. It is an error
// to ask for the array when the type has none (info.ArrayOID == 0).
//
// Register also maps the Go type T (and []T with the array) to the type with [pgtype.Map.RegisterDefaultPgType], so
// values of T find the type when a parameter's OID is unknown. It skips this for Go types m already maps (string,
// int64, time.Time, and T of an earlier registration: the first one keeps T), for unnamed types (map[string]any,
// []int) and for interface types, which would otherwise capture every value of that type.
//
// Types that c's codec builds on (composite fields, a domain's base type) must be registered on m before c.
func Register(m *pgtype.Map, c Converter, info TypeInfo, withArray bool) error {
	name := info.Name
	if name == "" {
		name = c.TypeName()
		info.Name = name
	}
	if info.OID == 0 {
		return fmt.Errorf("converters: type %s has no OID", name)
	}
	if withArray && info.ArrayOID == 0 {
		return fmt.Errorf("converters: type %s has no array type", name)
	}

	codec, err := c.Codec(m, info)
	if err != nil {
		return err
	}

	t := &pgtype.Type{Name: name, OID: info.OID, Codec: codec}
	m.RegisterType(t)
	arrayName := name + "[]"
	if withArray {
		m.RegisterType(&pgtype.Type{
			Name:  arrayName,
			OID:   info.ArrayOID,
			Codec: &pgtype.ArrayCodec{ElementType: t, Delimiter: info.Delimiter},
		})
	}

	if goType := c.GoType(); claimable(m, goType) {
		m.RegisterDefaultPgType(reflect.Zero(goType).Interface(), name)
		if withArray {
			m.RegisterDefaultPgType(reflect.Zero(reflect.SliceOf(goType)).Interface(), arrayName)
		}
	}
	return nil
}

// claimable reports whether values of the Go type t may be routed to a converter's type when their parameter OID is
// unknown: t must be a named, non-interface type that m (including pgtype's defaults) does not already map.
func claimable(m *pgtype.Map, t reflect.Type) bool {
	if t == nil || t.Name() == "" || t.PkgPath() == "" || t.Kind() == reflect.Interface {
		return false
	}
	_, mapped := m.TypeForValue(reflect.Zero(t).Interface())
	return !mapped
}

// nilable reports whether NULL can be stored in a value of type t as its zero value.
func nilable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return true
	}
	return false
}

func kindName(k byte) string {
	switch k {
	case 'b':
		return "base"
	case 'c':
		return "composite"
	case 'd':
		return "domain"
	case 'e':
		return "enum"
	case 'm':
		return "multirange"
	case 'p':
		return "pseudo"
	case 'r':
		return "range"
	case 0:
		return "unknown"
	}
	return fmt.Sprintf("typtype %q", k)
}

func checkKind(conv string, info TypeInfo, want byte) error {
	if info.Kind != want {
		return fmt.Errorf("converters: %s used on %s (%s type, want %s)", conv, info.Name, kindName(info.Kind), kindName(want))
	}
	return nil
}
