//go:build go1.27

package pgpurepy

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"reflect"

	"github.com/jackc/pgx/v5/pgtype"
)

var _ driver.RowsColumnScanner = (*rows)(nil)

// ScanColumn scans column i of the current row straight into dest (Go 1.27's
// driver.RowsColumnScanner). Array columns go through the connection's
// pgtype map, so Scan(&[]int64{}), Scan(&[]string{}) and the like need no
// wrapper; everything else is decoded as Next would and handed to
// database/sql's own conversion, so behaviour is unchanged.
func (r *rows) ScanColumn(sc driver.ScanContext, i int, dest any) error {
	src := r.rr.Values()[i]
	if r.scansDirectly(i, dest) {
		f := r.fields[i]
		if err := r.c.s.codecs.tm.Scan(f.DataTypeOID, f.Format, src, dest); err != nil {
			return r.decodeError(i, fmt.Sprintf("%T", dest), err)
		}
		return nil
	}
	v, err := r.decoders[i](src)
	if err != nil {
		return r.decodeError(i, r.scanTypeName(i), err)
	}
	return sql.ConvertAssign(sc, dest, v)
}

// scansDirectly reports whether dest is a slice pointer (other than
// *[]byte) and column i an array type the map knows, with no registered
// converter claiming the column.
func (r *rows) scansDirectly(i int, dest any) bool {
	if _, ok := dest.(sql.Scanner); ok {
		return false
	}
	t := reflect.TypeOf(dest)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Slice || t.Elem().Elem().Kind() == reflect.Uint8 {
		return false
	}
	oid := r.fields[i].DataTypeOID
	if _, ok := r.c.s.codecs.converted[oid]; ok {
		return false
	}
	typ, ok := r.c.s.codecs.tm.TypeForOID(oid)
	if !ok {
		return false
	}
	_, isArray := typ.Codec.(*pgtype.ArrayCodec)
	return isArray
}
