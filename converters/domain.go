package converters

import (
	"database/sql/driver"
	"fmt"
	"reflect"

	"github.com/jackc/pgx/v5/pgtype"
)

// Domain returns a Converter for a domain whose values come back as T, where T is a Go type the domain's base type
// scans into and encodes from, e.g. Domain[string]("email") over text or Domain[int64]("posint") over int8.
//
// Scanning and encoding are those of the base type as registered on the connection's pgtype.Map (info.BaseOID), so
// the base type must be registered first when it is not built in (a domain over an enum or a composite). NULL follows
// the base type's rules: it is an error for string or int64 and fine for pointers, sql.Null* and pgtype types.
func Domain[T any](typeName string) Converter {
	return domainConverter[T]{name: typeName}
}

type domainConverter[T any] struct{ name string }

func (c domainConverter[T]) TypeName() string     { return c.name }
func (c domainConverter[T]) GoType() reflect.Type { return reflect.TypeFor[T]() }

func (c domainConverter[T]) Codec(m *pgtype.Map, info TypeInfo) (pgtype.Codec, error) {
	if err := checkKind(fmt.Sprintf("Domain[%s]", c.GoType()), info, 'd'); err != nil {
		return nil, err
	}
	base, ok := m.TypeForOID(info.BaseOID)
	if !ok {
		return nil, fmt.Errorf("converters: base type (OID %d) of domain %s is not registered", info.BaseOID, info.Name)
	}
	return &domainCodec[T]{pgName: info.Name, goType: c.GoType(), baseOID: info.BaseOID, base: base.Codec}, nil
}

// domainCodec plans every scan and encode as the Map would for the base type, and names the domain in errors.
type domainCodec[T any] struct {
	pgName  string
	goType  reflect.Type
	baseOID uint32
	base    pgtype.Codec
}

var _ pgtype.Codec = (*domainCodec[int])(nil)

func (c *domainCodec[T]) FormatSupported(format int16) bool { return c.base.FormatSupported(format) }
func (c *domainCodec[T]) PreferredFormat() int16            { return c.base.PreferredFormat() }

func (c *domainCodec[T]) jsonKindOf() byte {
	if k, ok := c.base.(jsonKinder); ok {
		return k.jsonKindOf()
	}
	switch c.base.(type) {
	case *pgtype.JSONCodec:
		return 'j'
	case *pgtype.JSONBCodec:
		return 'b'
	}
	return 0
}

func (c *domainCodec[T]) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	plan := m.PlanEncode(c.baseOID, format, value)
	if plan == nil {
		return nil
	}
	return &domainEncodePlan{pgName: c.pgName, next: plan}
}

func (c *domainCodec[T]) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	return &domainScanPlan{pgName: c.pgName, next: m.PlanScan(c.baseOID, format, target)}
}

func (c *domainCodec[T]) DecodeDatabaseSQLValue(m *pgtype.Map, oid uint32, format int16, src []byte) (driver.Value, error) {
	v, err := c.base.DecodeDatabaseSQLValue(m, c.baseOID, format, src)
	if err != nil {
		return nil, fmt.Errorf("converters: cannot decode %s: %w", c.pgName, err)
	}
	return v, nil
}

// DecodeValue decodes into T, so scanning into *any gives the converter's Go type rather than the base type's default.
func (c *domainCodec[T]) DecodeValue(m *pgtype.Map, oid uint32, format int16, src []byte) (any, error) {
	if src == nil {
		return nil, nil
	}
	var v T
	if err := c.PlanScan(m, oid, format, &v).Scan(src, &v); err != nil {
		return nil, err
	}
	return v, nil
}

type domainScanPlan struct {
	pgName string
	next   pgtype.ScanPlan
}

func (p *domainScanPlan) Scan(src []byte, target any) error {
	if err := p.next.Scan(src, target); err != nil {
		what := p.pgName
		if src == nil {
			what = "NULL " + p.pgName
		}
		return fmt.Errorf("converters: cannot decode %s into %s: %w", what, targetName(target), err)
	}
	return nil
}

type domainEncodePlan struct {
	pgName string
	next   pgtype.EncodePlan
}

func (p *domainEncodePlan) Encode(value any, buf []byte) ([]byte, error) {
	newBuf, err := p.next.Encode(value, buf)
	if err != nil {
		return nil, fmt.Errorf("converters: cannot encode %T as %s: %w", value, p.pgName, err)
	}
	return newBuf, nil
}

// targetName names the Go type a scan target points to.
func targetName(target any) string {
	t := reflect.TypeOf(target)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return fmt.Sprint(t)
}
