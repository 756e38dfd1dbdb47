package pgpurepy

import (
	"database/sql/driver"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// decoder turns one column value, as the server sent it, into a
// driver.Value. src is nil for NULL and is only valid during the call.
type decoder func(src []byte) (driver.Value, error)

// codecs is what one connection knows of types: pgx's type map, with the
// registered converters applied to it, and which OIDs those converters
// claim. Its decoders turn column values into what database/sql takes; the
// encoding of arguments is in encode.go.
type codecs struct {
	tm *pgtype.Map
	// converted maps OIDs of registered converters to the Go type their
	// values decode into.
	converted map[uint32]*conversion
}

// conversion is a registered converter as one connection sees it.
type conversion struct {
	name   string
	goType reflect.Type
	array  bool
}

// typeName names the type oid for an error message.
func (c *codecs) typeName(oid uint32) string {
	if t, ok := c.tm.TypeForOID(oid); ok {
		return t.Name
	}
	return "oid " + strconv.FormatUint(uint64(oid), 10)
}

// resultFormat picks the wire format for a result column: binary where it is
// cheaper to decode and loses nothing, text where the text is the value
// users expect (numeric at full precision, uuid, intervals, arrays for
// pq.Array-style scanners).
func (c *codecs) resultFormat(oid uint32) int16 {
	switch oid {
	case pgtype.BoolOID, pgtype.ByteaOID, pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.OIDOID, pgtype.XIDOID, pgtype.CIDOID,
		pgtype.Float4OID, pgtype.Float8OID, pgtype.DateOID, pgtype.TimestampOID, pgtype.TimestamptzOID:
		return pgtype.BinaryFormatCode
	}
	if _, ok := c.converted[oid]; ok {
		return c.tm.FormatCodeForOID(oid)
	}
	return pgtype.TextFormatCode
}

// decoderFor returns the decoder of a column of type oid sent in format.
func (c *codecs) decoderFor(oid uint32, format int16) decoder {
	if conv, ok := c.converted[oid]; ok {
		return c.convertedDecoder(oid, format, conv)
	}
	bin := format == pgtype.BinaryFormatCode
	switch oid {
	case pgtype.BoolOID:
		if bin {
			return nullable(func(src []byte) (driver.Value, error) {
				if len(src) != 1 {
					return nil, fmt.Errorf("bool: %d bytes", len(src))
				}
				return src[0] == 1, nil
			})
		}
		return nullable(func(src []byte) (driver.Value, error) { return len(src) == 1 && src[0] == 't', nil })
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
		if bin {
			return nullable(decodeBinaryInt)
		}
		return nullable(func(src []byte) (driver.Value, error) { return strconv.ParseInt(string(src), 10, 64) })
	case pgtype.OIDOID, pgtype.XIDOID, pgtype.CIDOID:
		if bin {
			return nullable(decodeBinaryUint32)
		}
		return nullable(func(src []byte) (driver.Value, error) {
			n, err := strconv.ParseUint(string(src), 10, 32)
			return int64(n), err
		})
	case pgtype.Float4OID, pgtype.Float8OID:
		if bin {
			return nullable(decodeBinaryFloat)
		}
		return nullable(func(src []byte) (driver.Value, error) { return strconv.ParseFloat(string(src), 64) })
	case pgtype.ByteaOID:
		if bin {
			return nullable(func(src []byte) (driver.Value, error) { return append([]byte{}, src...), nil })
		}
		return c.scanDecoder(oid, format, func() any { return new([]byte) })
	case pgtype.JSONOID, pgtype.JSONBOID:
		return nullable(func(src []byte) (driver.Value, error) {
			if !bin || oid == pgtype.JSONOID {
				return append([]byte{}, src...), nil
			}
			if len(src) == 0 || src[0] != 1 {
				return nil, fmt.Errorf("jsonb: unknown binary version")
			}
			return append([]byte{}, src[1:]...), nil
		})
	case pgtype.DateOID, pgtype.TimestampOID, pgtype.TimestamptzOID:
		return c.timeDecoder(oid, format)
	}
	if bin {
		// Binary for a type not listed above comes from pgx's result
		// format options only: decode it to what database/sql takes, as
		// pgx's stdlib does (the text form, for most types).
		if t, ok := c.tm.TypeForOID(oid); ok {
			return nullable(func(src []byte) (driver.Value, error) {
				return t.Codec.DecodeDatabaseSQLValue(c.tm, oid, format, src)
			})
		}
		return nullable(func(src []byte) (driver.Value, error) { return append([]byte{}, src...), nil })
	}
	return nullable(func(src []byte) (driver.Value, error) { return string(src), nil })
}

func nullable(f func(src []byte) (driver.Value, error)) decoder {
	return func(src []byte) (driver.Value, error) {
		if src == nil {
			return nil, nil
		}
		return f(src)
	}
}

func decodeBinaryInt(src []byte) (driver.Value, error) {
	switch len(src) {
	case 2:
		return int64(int16(binary.BigEndian.Uint16(src))), nil
	case 4:
		return int64(int32(binary.BigEndian.Uint32(src))), nil
	case 8:
		return int64(binary.BigEndian.Uint64(src)), nil
	}
	return nil, fmt.Errorf("integer: %d bytes", len(src))
}

// decodeBinaryUint32 decodes PostgreSQL's unsigned 32-bit types (oid, xid,
// cid) into an int64, which holds all their values.
func decodeBinaryUint32(src []byte) (driver.Value, error) {
	if len(src) != 4 {
		return nil, fmt.Errorf("unsigned integer: %d bytes", len(src))
	}
	return int64(binary.BigEndian.Uint32(src)), nil
}

func decodeBinaryFloat(src []byte) (driver.Value, error) {
	switch len(src) {
	case 4:
		return float64(math.Float32frombits(binary.BigEndian.Uint32(src))), nil
	case 8:
		return math.Float64frombits(binary.BigEndian.Uint64(src)), nil
	}
	return nil, fmt.Errorf("float: %d bytes", len(src))
}

// scanDecoder decodes through the session's pgtype map into a fresh target
// and returns what the target points at. The scan plan is found once.
func (c *codecs) scanDecoder(oid uint32, format int16, target func() any) decoder {
	plan := c.tm.PlanScan(oid, format, target())
	return func(src []byte) (driver.Value, error) {
		if src == nil {
			return nil, nil
		}
		t := target()
		if err := plan.Scan(src, t); err != nil {
			return nil, err
		}
		return reflect.ValueOf(t).Elem().Interface(), nil
	}
}

// timeDecoder returns time.Time, or the strings "infinity" and "-infinity"
// as PostgreSQL spells them (what lib/pq and pgx's stdlib return too). The
// scan target lives with the decoder, not one per value (a scan through
// the plan's interface would move it to the heap): a decoder belongs to
// one session and decodes one value at a time.
func (c *codecs) timeDecoder(oid uint32, format int16) decoder {
	var scan func(src []byte) (time.Time, pgtype.InfinityModifier, error)
	switch oid {
	case pgtype.DateOID:
		plan := c.tm.PlanScan(oid, format, &pgtype.Date{})
		var v pgtype.Date
		scan = func(src []byte) (time.Time, pgtype.InfinityModifier, error) {
			v = pgtype.Date{}
			err := plan.Scan(src, &v)
			return v.Time, v.InfinityModifier, err
		}
	case pgtype.TimestampOID:
		plan := c.tm.PlanScan(oid, format, &pgtype.Timestamp{})
		var v pgtype.Timestamp
		scan = func(src []byte) (time.Time, pgtype.InfinityModifier, error) {
			v = pgtype.Timestamp{}
			err := plan.Scan(src, &v)
			return v.Time, v.InfinityModifier, err
		}
	default:
		plan := c.tm.PlanScan(oid, format, &pgtype.Timestamptz{})
		var v pgtype.Timestamptz
		scan = func(src []byte) (time.Time, pgtype.InfinityModifier, error) {
			v = pgtype.Timestamptz{}
			err := plan.Scan(src, &v)
			return v.Time, v.InfinityModifier, err
		}
	}
	return nullable(func(src []byte) (driver.Value, error) {
		t, inf, err := scan(src)
		switch {
		case err != nil:
			return nil, err
		case inf == pgtype.Infinity:
			return "infinity", nil
		case inf == pgtype.NegativeInfinity:
			return "-infinity", nil
		}
		return t, nil
	})
}

// convertedDecoder decodes a registered type into its Go type, or a slice
// of it for the array type. An array with NULL elements, which []T cannot
// hold unless T is a pointer, comes back as []*T.
func (c *codecs) convertedDecoder(oid uint32, format int16, conv *conversion) decoder {
	typ := conv.goType
	var ptrs reflect.Type
	if conv.array {
		typ = reflect.SliceOf(conv.goType)
		if conv.goType.Kind() != reflect.Pointer {
			ptrs = reflect.SliceOf(reflect.PointerTo(conv.goType))
		}
	}
	plan := c.tm.PlanScan(oid, format, reflect.New(typ).Interface())
	var ptrPlan pgtype.ScanPlan
	if ptrs != nil {
		ptrPlan = c.tm.PlanScan(oid, format, reflect.New(ptrs).Interface())
	}
	return func(src []byte) (driver.Value, error) {
		if src == nil {
			return nil, nil
		}
		ptr := reflect.New(typ)
		err := plan.Scan(src, ptr.Interface())
		if err == nil {
			return ptr.Elem().Interface(), nil
		}
		if ptrPlan != nil {
			alt := reflect.New(ptrs)
			if ptrPlan.Scan(src, alt.Interface()) == nil {
				return alt.Elem().Interface(), nil
			}
		}
		return nil, fmt.Errorf("decode %s into %s: %w", conv.name, typ, err)
	}
}
