package pgpurepy

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rowChunkMax is the most rows Conn.Query, and a batch's results, allocate
// at once.
const rowChunkMax = 32

// Row is one row of a result, decoded as database/sql would decode it.
type Row struct {
	columns []string
	values  []driver.Value
}

// Columns returns the column names, in order, in a new slice.
func (r *Row) Columns() []string { return append([]string(nil), r.columns...) }

// Values returns the decoded values, in column order: int64, float64, bool,
// string, []byte, time.Time, nil, or a registered converter's Go type.
func (r *Row) Values() []any {
	out := make([]any, len(r.values))
	for i, v := range r.values {
		out[i] = v
	}
	return out
}

// Get returns the value of the column called name, and whether there is
// such a column. With duplicate names the first one wins.
func (r *Row) Get(name string) (any, bool) {
	for i, c := range r.columns {
		if c == name {
			return r.values[i], true
		}
	}
	return nil, false
}

// Scan copies the row's values into dest, one per column, with the
// conversions database/sql's Rows.Scan makes for the common types:
// *any, sql.Scanner, integer and float kinds of any size (with an overflow
// check), string and []byte in both directions, time.Time, and pointer
// destinations for NULL.
func (r *Row) Scan(dest ...any) error {
	if len(dest) != len(r.values) {
		return fmt.Errorf("pgpurepy: scan: %d destinations for %d columns", len(dest), len(r.values))
	}
	for i, d := range dest {
		if err := assign(d, r.values[i]); err != nil {
			return fmt.Errorf("pgpurepy: scan column %q: %w", r.columns[i], err)
		}
	}
	return nil
}

// ScanStruct copies the row into a struct of type T, matching each column to
// the field whose `db` tag is the column name, or else whose lower-cased
// name is. Columns without a field are an error, so that a typo is not
// silently dropped; fields without a column keep their zero value.
func ScanStruct[T any](r *Row) (T, error) {
	var out T
	v := reflect.ValueOf(&out).Elem()
	if v.Kind() != reflect.Struct {
		return out, fmt.Errorf("pgpurepy: ScanStruct needs a struct type, not %s", v.Type())
	}
	fields := structFields(v.Type())
	for i, col := range r.columns {
		idx, ok := fields[col]
		if !ok {
			return out, fmt.Errorf("pgpurepy: column %q has no field in %s (add a `db:\"%s\"` tag)", col, v.Type(), col)
		}
		if err := assign(v.FieldByIndex(idx).Addr().Interface(), r.values[i]); err != nil {
			return out, fmt.Errorf("pgpurepy: column %q into %s: %w", col, v.Type(), err)
		}
	}
	return out, nil
}

var structFieldCache sync.Map // reflect.Type -> map[string][]int

func structFields(t reflect.Type) map[string][]int {
	if m, ok := structFieldCache.Load(t); ok {
		return m.(map[string][]int)
	}
	m := make(map[string][]int)
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name := strings.ToLower(f.Name)
		if tag, ok := f.Tag.Lookup("db"); ok {
			tag, _, _ = strings.Cut(tag, ",")
			if tag == "-" {
				continue
			}
			if tag != "" {
				name = tag
			}
		}
		if _, dup := m[name]; !dup {
			m[name] = f.Index
		}
	}
	structFieldCache.Store(t, m)
	return m
}

// assign stores src, a decoded driver value, into the pointer dest.
func assign(dest any, src driver.Value) error {
	switch d := dest.(type) {
	case *any:
		*d = src
		return nil
	case sql.Scanner:
		return d.Scan(src)
	}
	if assignFast(dest, src) {
		return nil
	}
	dv := reflect.ValueOf(dest)
	if dv.Kind() != reflect.Pointer || dv.IsNil() {
		return fmt.Errorf("destination %T is not a non-nil pointer", dest)
	}
	dv = dv.Elem()
	if src == nil {
		switch dv.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			dv.SetZero()
			return nil
		}
		return fmt.Errorf("NULL into %s (use a pointer or sql.Null type)", dv.Type())
	}
	if dv.Kind() == reflect.Pointer {
		p := reflect.New(dv.Type().Elem())
		if err := assign(p.Interface(), src); err != nil {
			return err
		}
		dv.Set(p)
		return nil
	}
	sv := reflect.ValueOf(src)
	if sv.Type().AssignableTo(dv.Type()) {
		dv.Set(sv)
		return nil
	}
	switch s := src.(type) {
	case []byte:
		switch dv.Kind() {
		case reflect.String:
			dv.SetString(string(s))
			return nil
		case reflect.Slice:
			if dv.Type().Elem().Kind() == reflect.Uint8 {
				dv.SetBytes(append([]byte{}, s...))
				return nil
			}
		}
	case string:
		if dv.Kind() == reflect.Slice && dv.Type().Elem().Kind() == reflect.Uint8 {
			dv.SetBytes([]byte(s))
			return nil
		}
		return assignParsed(dv, s)
	case time.Time:
		if dv.Kind() == reflect.String {
			dv.SetString(s.Format(time.RFC3339Nano))
			return nil
		}
	}
	if sv.CanConvert(dv.Type()) && numericKind(sv.Kind()) && numericKind(dv.Kind()) {
		c := sv.Convert(dv.Type())
		if !c.Convert(sv.Type()).Equal(sv) {
			return fmt.Errorf("value %v overflows %s", src, dv.Type())
		}
		dv.Set(c)
		return nil
	}
	if sv.Type().ConvertibleTo(dv.Type()) && sv.Kind() == dv.Kind() {
		dv.Set(sv.Convert(dv.Type()))
		return nil
	}
	return fmt.Errorf("cannot store %T into %s", src, dv.Type())
}

// assignFast stores src into the commonest destinations without
// reflection, and reports whether it did. Everything else, including an
// integer that overflows its destination, goes the general way.
func assignFast(dest any, src driver.Value) bool {
	switch s := src.(type) {
	case int64:
		switch d := dest.(type) {
		case *int64:
			*d = s
			return true
		case *int:
			if int64(int(s)) == s {
				*d = int(s)
				return true
			}
		case *int32:
			if int64(int32(s)) == s {
				*d = int32(s)
				return true
			}
		}
	case string:
		if d, ok := dest.(*string); ok {
			*d = s
			return true
		}
	case float64:
		if d, ok := dest.(*float64); ok {
			*d = s
			return true
		}
	case bool:
		if d, ok := dest.(*bool); ok {
			*d = s
			return true
		}
	case time.Time:
		if d, ok := dest.(*time.Time); ok {
			*d = s
			return true
		}
	}
	return false
}

// assignParsed stores text (numeric, for instance) into a number or bool.
func assignParsed(dv reflect.Value, s string) error {
	switch dv.Kind() {
	case reflect.String:
		dv.SetString(s)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, dv.Type().Bits())
		if err == nil {
			dv.SetInt(n)
		}
		return err
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, dv.Type().Bits())
		if err == nil {
			dv.SetUint(n)
		}
		return err
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, dv.Type().Bits())
		if err == nil {
			dv.SetFloat(f)
		}
		return err
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err == nil {
			dv.SetBool(b)
		}
		return err
	}
	return fmt.Errorf("cannot store string into %s", dv.Type())
}

func numericKind(k reflect.Kind) bool {
	return (k >= reflect.Int && k <= reflect.Uint64) || k == reflect.Float32 || k == reflect.Float64
}
