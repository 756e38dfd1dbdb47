package pgpurepy

import (
	"context"
	"database/sql/driver"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// start readies the session for the holder's next statement: it waits for
// a recovery (bounded by ctx) and sends the deallocations that wait.
func (s *session) start(ctx context.Context) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	return s.flushDrops(ctx)
}

// run runs sql, a single statement, with the extended protocol and reads up
// to its first row (rows) or to its end. It returns the reader open, before
// the first row, or, once the statement ended, its command tag and its
// error passed through finish. A statement that failed before any row
// because its cached description went stale runs once more, described
// afresh: outside a transaction the failed attempt cost nothing.
func (s *session) run(ctx context.Context, sql string, args []driver.NamedValue, o *queryOptions, rows bool) (*pgconn.ResultReader, *stmtDesc, pgconn.CommandTag, error) {
	for attempt := 0; ; attempt++ {
		rr, d, err := s.execParams(ctx, sql, args, o)
		if err != nil {
			return nil, nil, pgconn.CommandTag{}, err
		}
		if rows && (rr.FieldDescriptions() != nil || len(d.sd.Fields) == 0) {
			return rr, d, pgconn.CommandTag{}, nil
		}
		tag, err := rr.Close()
		if s.retryStale(d, err, attempt) {
			continue
		}
		return nil, d, tag, s.finishStmt(ctx, sql, err)
	}
}

// execParams starts an extended-protocol statement. The returned reader must
// be closed and its error passed through finish.
func (s *session) execParams(ctx context.Context, sql string, args []driver.NamedValue, o *queryOptions) (*pgconn.ResultReader, *stmtDesc, error) {
	if err := s.start(ctx); err != nil {
		return nil, nil, err
	}
	if s.carryBegin() {
		defer s.landBegin()
	}
	if err := s.sync(); err != nil {
		return nil, nil, err
	}
	d, err := s.describe(ctx, sql, o.naming)
	if err != nil {
		return nil, nil, s.finish(ctx, err)
	}
	s.dirty = s.dirty || d.changesSession
	if len(args) != len(d.sd.ParamOIDs) {
		return nil, nil, fmt.Errorf("pgpurepy: statement has %d parameters but %d arguments were given", len(d.sd.ParamOIDs), len(args))
	}
	p := &s.params
	if err := p.encode(&s.codecs, d.sd.ParamOIDs, args); err != nil {
		return nil, nil, err
	}
	formats := d.resultFormats
	if f := o.resultFormats(d.sd.Fields); f != nil {
		formats = f
	}
	var rr *pgconn.ResultReader
	if s.byName(d) {
		rr = s.pg.ExecStatement(ctx, d.sd, p.values, p.formats, formats)
	} else {
		rr = s.pg.ExecParams(ctx, sql, p.values, d.sd.ParamOIDs, p.formats, formats)
	}
	p.sent()
	return rr, d, nil
}

// execSimple runs sql, which may hold several statements, with the simple
// query protocol.
func (s *session) execSimple(ctx context.Context, sql string) (*pgconn.MultiResultReader, error) {
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := s.beginNow(ctx); err != nil {
		return nil, s.finish(ctx, err)
	}
	if err := s.sync(); err != nil {
		return nil, err
	}
	s.dirty = s.dirty || changesSession(sql)
	return s.pg.Exec(ctx, sql), nil
}
