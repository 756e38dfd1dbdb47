package pgpurepy

import (
	"context"
	"database/sql/driver"
	"io"
	"math"
	"reflect"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// rows streams one result: rows are decoded as Next asks for them, never
// buffered. With the simple protocol, mrr holds further result sets.
type rows struct {
	c   *conn
	ctx context.Context
	sql string

	rr  *pgconn.ResultReader
	mrr *pgconn.MultiResultReader

	fields   []pgconn.FieldDescription
	columns  []string
	decoders []decoder
	// names backs the first copy of columns that Columns hands out.
	names      [4]string
	namesGiven bool

	// finished is set once the statement's outcome went through conn.done.
	finished bool
	err      error
}

var (
	_ driver.Rows                           = (*rows)(nil)
	_ driver.RowsNextResultSet              = (*rows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*rows)(nil)
	_ driver.RowsColumnTypeScanType         = (*rows)(nil)
	_ driver.RowsColumnTypeLength           = (*rows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*rows)(nil)
	_ driver.RowsColumnTypeNullable         = (*rows)(nil)
)

// Columns returns the column names in a slice of the caller's own:
// database/sql hands it to the application, and the names it copies are
// the statement cache's. The first call, normally database/sql's own when
// it sizes its row buffer, copies into the rows instead of allocating.
func (r *rows) Columns() []string {
	if !r.namesGiven && len(r.columns) <= len(r.names) {
		r.namesGiven = true
		return append(r.names[:0:len(r.columns)], r.columns...)
	}
	return append([]string(nil), r.columns...)
}

func (r *rows) columnNames() []string { return r.columns }

// Next decodes the next row into dest. A value that cannot be decoded gives
// an error naming the column, its PostgreSQL type and the Go type; the
// connection stays usable.
func (r *rows) Next(dest []driver.Value) error {
	if err := r.NextRow(); err != nil {
		return err
	}
	values := r.rr.Values()
	for i, dec := range r.decoders {
		v, err := dec(values[i])
		if err != nil {
			return r.decodeError(i, r.scanTypeName(i), err)
		}
		dest[i] = v
	}
	return nil
}

// NextRow advances to the next row without decoding it. It is Next's first
// half, and on Go 1.27 database/sql's RowsColumnScanner entry point.
func (r *rows) NextRow() error {
	if r.rr == nil || (r.finished && r.mrr == nil) {
		return io.EOF
	}
	if r.rr.NextRow() {
		return nil
	}
	if r.mrr != nil {
		// The result set's outcome is read by NextResultSet or Close.
		return io.EOF
	}
	if err := r.finish(); err != nil {
		return err
	}
	return io.EOF
}

func (r *rows) decodeError(i int, goType string, err error) error {
	return &DecodeError{Column: r.columns[i], PgType: r.c.s.codecs.typeName(r.fields[i].DataTypeOID), GoType: goType, Err: err}
}

// finish closes the extended-protocol reader once and passes its outcome
// through conn.done.
func (r *rows) finish() error {
	if r.finished || r.rr == nil {
		return r.err
	}
	r.finished = true
	tag, err := r.rr.Close()
	r.err = r.c.s.finishStmt(r.ctx, r.sql, err)
	r.c.traceEnd(r.ctx, tag.String(), r.err)
	return r.err
}

// Close reads the rest of the result off the wire without decoding it and
// returns the statement's error, if it ends with one, as database/sql's
// QueryRow expects ("processed to completion with no errors"). It does not
// cancel the statement: a cancel would roll back what the statement did
// (an INSERT ... RETURNING read for its first row) or abort the
// transaction it runs in. A context that ends while it reads cancels the
// statement as it does any other.
func (r *rows) Close() error {
	err := r.close()
	r.c.endRouted()
	return err
}

func (r *rows) close() error {
	if r.mrr != nil {
		if r.finished {
			return r.err
		}
		r.finished = true
		r.err = r.c.s.finish(r.ctx, r.mrr.Close())
		r.c.traceEnd(r.ctx, "", r.err)
		return r.err
	}
	return r.finish()
}

func (r *rows) HasNextResultSet() bool {
	return r.mrr != nil && !r.finished
}

// NextResultSet moves to the next statement's result (simple protocol only).
func (r *rows) NextResultSet() error {
	if r.mrr == nil {
		return io.EOF
	}
	if r.rr != nil {
		if _, err := r.rr.Close(); err != nil {
			r.finished = true
			r.err = r.c.s.finish(r.ctx, r.mrr.Close())
			return r.err
		}
	}
	return r.nextResult()
}

// nextResult advances mrr and plans the decoding of its result set.
func (r *rows) nextResult() error {
	if !r.mrr.NextResult() {
		r.rr = nil
		r.finished = true
		r.err = r.c.s.finish(r.ctx, r.mrr.Close())
		if r.err != nil {
			return r.err
		}
		return io.EOF
	}
	r.rr = r.mrr.ResultReader()
	r.plan(r.rr.FieldDescriptions())
	return nil
}

// plan decodes the result by fields, as the server describes it for this
// execution, instead of by a cached description.
func (r *rows) plan(fields []pgconn.FieldDescription) {
	r.fields = fields
	r.columns = make([]string, len(fields))
	r.decoders = make([]decoder, len(fields))
	for i, f := range fields {
		r.columns[i] = f.Name
		r.decoders[i] = r.c.s.codecs.decoderFor(f.DataTypeOID, f.Format)
	}
}

// ColumnTypeDatabaseTypeName returns the type's name in upper case, as
// database/sql documents ("INT4", "VARCHAR", "_TEXT" for text[]).
func (r *rows) ColumnTypeDatabaseTypeName(i int) string {
	return r.c.s.codecs.databaseTypeName(r.fields[i].DataTypeOID)
}

// ColumnTypeScanType returns the Go type to scan the column into (see
// codecs.scanType).
func (r *rows) ColumnTypeScanType(i int) reflect.Type {
	return r.c.s.codecs.scanType(r.fields[i])
}

// valueType returns the Go type Next stores for the column.
func (r *rows) valueType(i int) reflect.Type { return r.c.s.codecs.valueType(r.fields[i]) }

func (r *rows) scanTypeName(i int) string { return r.valueType(i).String() }

// ColumnTypeNullable reports whether a column read straight from a table
// may be NULL (its NOT NULL constraint); for expressions it is unknown.
func (r *rows) ColumnTypeNullable(i int) (nullable, ok bool) {
	return r.c.sh.nulls.lookup(r.fields[i])
}

// typmod is a field's type modifier; noTypmod means none was declared.
// varlenaHeader is the 4 bytes PostgreSQL adds to the typmod of the types
// whose length is counted in characters (varchar, bpchar) or digits
// (numeric).
const (
	noTypmod      = -1
	varlenaHeader = 4
)

// ColumnTypeLength reports the declared length of varchar(n), char(n) and
// varbit(n), and an unlimited length (math.MaxInt64) for text, bytea and
// the same types declared without a length.
func (r *rows) ColumnTypeLength(i int) (int64, bool) { return columnLength(r.fields[i]) }

// columnLength is ColumnTypeLength for the field f.
func columnLength(f pgconn.FieldDescription) (int64, bool) {
	switch f.DataTypeOID {
	case pgtype.TextOID, pgtype.ByteaOID:
		return math.MaxInt64, true
	case pgtype.VarcharOID, pgtype.BPCharOID, pgtype.VarbitOID:
		if f.TypeModifier == noTypmod {
			return math.MaxInt64, true
		}
		if f.DataTypeOID == pgtype.VarbitOID {
			return int64(f.TypeModifier), true
		}
		return int64(f.TypeModifier - varlenaHeader), true
	}
	return 0, false
}

// ColumnTypePrecisionScale reports numeric(p, s), and ok false for numeric
// declared without them, which holds any precision. For the time types
// (timestamp, timestamptz, time, timetz, interval) it reports precision 0
// and the fractional digits of the seconds as the scale, 6 when none were
// declared, as pgx's stdlib does.
func (r *rows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	return columnPrecisionScale(r.fields[i])
}

// columnPrecisionScale is ColumnTypePrecisionScale for the field f.
func columnPrecisionScale(f pgconn.FieldDescription) (precision, scale int64, ok bool) {
	mod := f.TypeModifier
	switch f.DataTypeOID {
	case pgtype.NumericOID:
		if mod == noTypmod {
			return 0, 0, false
		}
		mod -= varlenaHeader
		return int64(mod>>16) & 0xffff, int64(mod) & 0xffff, true
	case pgtype.TimestampOID, pgtype.TimestamptzOID, pgtype.TimeOID, pgtype.TimetzOID:
		if mod == noTypmod {
			return 0, 6, true
		}
		return 0, int64(mod), true
	case pgtype.IntervalOID:
		// The low 16 bits are the precision, all set when only a field
		// range (YEAR TO MONTH, ...) was declared.
		if mod == noTypmod || mod&0xffff == 0xffff {
			return 0, 6, true
		}
		return 0, int64(mod & 0xffff), true
	}
	return 0, 0, false
}
