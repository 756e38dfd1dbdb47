package pgpurepy

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgpurepy/pgpurepy/converters"
)

// The driver's own catalog queries: what it reads about tables and types to
// answer ColumnTypeNullable and to register converters. They run on the
// session of the statement that needs them, as unnamed statements with
// text arguments and results, and return the server's error as it is: the
// caller's statement passes it through finish, once.

// catalog runs query with args in text format and calls fn with each row's
// raw text values; a row fn fails for ends the reading of the others, and
// its error is returned after the statement's.
func (s *session) catalog(ctx context.Context, query string, args []string, fn func(values [][]byte) error) error {
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	rr := s.pg.ExecParams(ctx, query, params, nil, nil, nil)
	var fnErr error
	for rr.NextRow() {
		if fnErr == nil {
			fnErr = fn(rr.Values())
		}
	}
	if _, err := rr.Close(); err != nil {
		return err
	}
	return fnErr
}

// learnNullability reads the NOT NULL flags of tables' columns.
func (s *session) learnNullability(ctx context.Context, tables []uint32) error {
	ids := make([]string, len(tables))
	for i, t := range tables {
		ids[i] = strconv.FormatUint(uint64(t), 10)
	}
	notNull := make(map[uint64]bool)
	err := s.catalog(ctx, "SELECT attrelid, attnum, attnotnull FROM pg_attribute WHERE attrelid = ANY($1::oid[]) AND attnum > 0",
		[]string{"{" + strings.Join(ids, ",") + "}"}, func(v [][]byte) error {
			rel, err1 := strconv.ParseUint(string(v[0]), 10, 32)
			num, err2 := strconv.ParseUint(string(v[1]), 10, 16)
			if err1 == nil && err2 == nil {
				notNull[columnKey(uint32(rel), uint16(num))] = string(v[2]) == "t"
			}
			return nil
		})
	if err != nil {
		return err
	}
	s.sh.nulls.learned(tables, notNull)
	return nil
}

// typeInfoSQL reads everything a converter needs about one type in one
// query. to_regtype resolves the name through search_path and gives NULL,
// so no row, for a type that does not exist.
const typeInfoSQL = `SELECT t.oid, t.typarray, t.typtype, t.typbasetype, t.typdelim,
  ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
  ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
  ARRAY(SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
FROM pg_type t WHERE t.oid = to_regtype($1)`

// typeInfo reads what a converter needs about the type called name, as a
// statement of its own: its error has been through finish.
func (s *session) typeInfo(ctx context.Context, name string) (converters.TypeInfo, error) {
	info := converters.TypeInfo{Name: name}
	var kind, delim string
	var enumLabels, fieldNames []string
	var fieldOIDs []uint32
	found := false
	err := s.catalog(ctx, typeInfoSQL, []string{name}, func(values [][]byte) error {
		found = true
		targets := []any{&info.OID, &info.ArrayOID, &kind, &info.BaseOID, &delim, &enumLabels, &fieldNames, &fieldOIDs}
		oids := []uint32{pgtype.OIDOID, pgtype.OIDOID, pgtype.QCharOID, pgtype.OIDOID, pgtype.QCharOID, pgtype.TextArrayOID, pgtype.TextArrayOID, pgtype.OIDArrayOID}
		for i, t := range targets {
			if err := s.codecs.tm.Scan(oids[i], pgtype.TextFormatCode, values[i], t); err != nil {
				return fmt.Errorf("read catalog entry of %s: %w", name, err)
			}
		}
		return nil
	})
	if err := s.finish(ctx, err); err != nil {
		return info, err
	}
	if !found {
		return info, fmt.Errorf("pgpurepy: type %q does not exist", name)
	}
	if kind != "" {
		info.Kind = kind[0]
	}
	if delim != "" {
		info.Delimiter = delim[0]
	}
	info.EnumLabels = enumLabels
	for i, n := range fieldNames {
		info.Fields = append(info.Fields, converters.Field{Name: n, OID: fieldOIDs[i]})
	}
	return info, nil
}
