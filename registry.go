package pgpurepy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgpurepy/pgpurepy/converters"
)

// registry holds the converters registered on a pool. Entries are only
// appended, so a session that applied the first n entries brings itself up
// to date by applying the rest; version is the number of entries, read with
// one atomic load before every statement.
type registry struct {
	version atomic.Uint64

	mu      sync.Mutex // protects entries
	entries []regEntry
}

type regEntry struct {
	conv      converters.Converter
	info      converters.TypeInfo
	withArray bool
}

// apply registers on s the entries it has not seen yet, and replans the
// decoding of its cached statements.
func (r *registry) apply(s *session) error {
	r.mu.Lock()
	entries := r.entries
	r.mu.Unlock()
	for _, e := range entries[s.regVersion:] {
		if err := applyEntry(s.tm, s.convertedMap(), e); err != nil {
			return fmt.Errorf("pgpurepy: register converter for %s: %w", e.info.Name, err)
		}
	}
	s.regVersion = uint64(len(entries))
	s.replan()
	return nil
}

func applyEntry(tm *pgtype.Map, converted map[uint32]*conversion, e regEntry) error {
	if err := converters.Register(tm, e.conv, e.info, e.withArray); err != nil {
		return err
	}
	converted[e.info.OID] = &conversion{name: e.info.Name, goType: e.conv.GoType()}
	if e.withArray {
		converted[e.info.ArrayOID] = &conversion{name: e.info.Name, goType: e.conv.GoType(), array: true}
	}
	return nil
}

func (s *session) convertedMap() map[uint32]*conversion {
	if s.converted == nil {
		s.converted = make(map[uint32]*conversion)
	}
	return s.converted
}

// typeInfoSQL reads everything a converter needs about one type in one
// query. to_regtype resolves the name through search_path and gives NULL,
// so no row, for a type that does not exist.
const typeInfoSQL = `SELECT t.oid, t.typarray, t.typtype, t.typbasetype, t.typdelim,
  ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
  ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
  ARRAY(SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum)
FROM pg_type t WHERE t.oid = to_regtype($1)`

// register resolves c's type with one catalog query on one pooled
// connection, checks that the converter fits by applying it to that
// connection, and adds it to the registry: every other connection applies it
// before its next statement, and every connection opened later at connect.
func (p *poolState) register(ctx context.Context, c converters.Converter, withArray bool) error {
	s, res, err := p.acquire(ctx)
	if err != nil {
		return err
	}
	cn := &conn{p: p, s: s, res: res}
	defer cn.Close()
	if err := s.sync(); err != nil {
		return err
	}
	info, err := cn.typeInfo(ctx, c.TypeName())
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			return fmt.Errorf("pgpurepy: look up type %q: %w", c.TypeName(), err)
		}
		return err
	}
	e := regEntry{conv: c, info: info, withArray: withArray}

	p.reg.mu.Lock()
	defer p.reg.mu.Unlock()
	// Check against a copy, so a converter that does not fit leaves the
	// session and the registry as they were.
	scratch := s.tm.Copy()
	if err := applyEntry(scratch, map[uint32]*conversion{}, e); err != nil {
		return fmt.Errorf("pgpurepy: register converter for %s: %w", info.Name, err)
	}
	p.reg.entries = append(p.reg.entries, e)
	p.reg.version.Store(uint64(len(p.reg.entries)))
	return nil
}

// typeInfo runs typeInfoSQL for name.
func (c *conn) typeInfo(ctx context.Context, name string) (converters.TypeInfo, error) {
	info := converters.TypeInfo{Name: name}
	var kind, delim string
	var enumLabels, fieldNames []string
	var fieldOIDs []uint32
	found := false
	err := c.queryFunc(ctx, typeInfoSQL, []any{name}, func(tm *pgtype.Map, values [][]byte) error {
		found = true
		targets := []any{&info.OID, &info.ArrayOID, &kind, &info.BaseOID, &delim, &enumLabels, &fieldNames, &fieldOIDs}
		oids := []uint32{pgtype.OIDOID, pgtype.OIDOID, pgtype.QCharOID, pgtype.OIDOID, pgtype.QCharOID, pgtype.TextArrayOID, pgtype.TextArrayOID, pgtype.OIDArrayOID}
		for i, t := range targets {
			if err := tm.Scan(oids[i], pgtype.TextFormatCode, values[i], t); err != nil {
				return fmt.Errorf("pgpurepy: read catalog entry of %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
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

// queryFunc runs query with args in text format and calls fn for each row's
// raw text values. It is for the driver's own catalog queries.
func (c *conn) queryFunc(ctx context.Context, query string, args []any, fn func(tm *pgtype.Map, values [][]byte) error) error {
	s := c.s
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(fmt.Sprint(a))
	}
	rr := s.pg.ExecParams(ctx, query, params, nil, nil, nil)
	var fnErr error
	for rr.NextRow() {
		if fnErr == nil {
			fnErr = fn(s.tm, rr.Values())
		}
	}
	_, err := rr.Close()
	if err := c.done(ctx, err); err != nil {
		return err
	}
	return fnErr
}
