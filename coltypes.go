package pgpurepy

import (
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// What a result column looks like to database/sql's ColumnType methods:
// the streamed rows (rows.go) ask the session's codecs while they hold the
// session; a multiplexed result (mux.go) is described on its carrier,
// which holds the codecs, into colTypes its caller keeps.

// colType is what the codecs say of one result column, taken while they
// may be read, for rows read after the session moved on.
type colType struct {
	// name is the column's database type name; scan its scan type.
	name string
	scan reflect.Type
}

// colTypes describes fields with c.
func (c *codecs) colTypes(fields []pgconn.FieldDescription) []colType {
	if len(fields) == 0 {
		return nil
	}
	out := make([]colType, len(fields))
	for i, f := range fields {
		out[i] = colType{name: c.databaseTypeName(f.DataTypeOID), scan: c.scanType(f)}
	}
	return out
}

// databaseTypeName returns the type's name in upper case, as database/sql
// documents ("INT4", "VARCHAR", "_TEXT" for text[]).
func (c *codecs) databaseTypeName(oid uint32) string {
	if conv, ok := c.converted[oid]; ok {
		if conv.array {
			return "_" + strings.ToUpper(conv.name)
		}
		return strings.ToUpper(conv.name)
	}
	if t, ok := c.tm.TypeForOID(oid); ok {
		return strings.ToUpper(t.Name)
	}
	return strconv.FormatUint(uint64(oid), 10)
}

var (
	typeBool    = reflect.TypeFor[bool]()
	typeInt16   = reflect.TypeFor[int16]()
	typeInt32   = reflect.TypeFor[int32]()
	typeInt64   = reflect.TypeFor[int64]()
	typeFloat32 = reflect.TypeFor[float32]()
	typeFloat64 = reflect.TypeFor[float64]()
	typeString  = reflect.TypeFor[string]()
	typeBytes   = reflect.TypeFor[[]byte]()
	typeTime    = reflect.TypeFor[time.Time]()
	typeAny     = reflect.TypeFor[any]()
)

// scanType returns the Go type to scan a column into: the type its
// decoder stores, except for int2, int4, float4 and numeric, which are
// reported as pgx's stdlib reports them (int16, int32, float32, float64)
// so that libraries that allocate destinations by it (gorm's scans into
// maps) get the same types with either driver.
func (c *codecs) scanType(f pgconn.FieldDescription) reflect.Type {
	if _, conv := c.converted[f.DataTypeOID]; !conv {
		switch f.DataTypeOID {
		case pgtype.Int2OID:
			return typeInt16
		case pgtype.Int4OID:
			return typeInt32
		case pgtype.Float4OID:
			return typeFloat32
		case pgtype.NumericOID:
			return typeFloat64
		}
	}
	return c.valueType(f)
}

// valueType returns the Go type a column's decoder stores.
func (c *codecs) valueType(f pgconn.FieldDescription) reflect.Type {
	if conv, ok := c.converted[f.DataTypeOID]; ok {
		if conv.array {
			return reflect.SliceOf(conv.goType)
		}
		return conv.goType
	}
	switch f.DataTypeOID {
	case pgtype.BoolOID:
		return typeBool
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID, pgtype.XIDOID, pgtype.CIDOID:
		return typeInt64
	case pgtype.Float4OID, pgtype.Float8OID:
		return typeFloat64
	case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID:
		return typeBytes
	case pgtype.DateOID, pgtype.TimestampOID, pgtype.TimestamptzOID:
		return typeTime
	}
	if f.Format == pgtype.BinaryFormatCode {
		return typeAny
	}
	return typeString
}
