package pgpurepy

import (
	"context"
)

// A session knows a SQL text by its description: the server's, plus the
// decoding plan of its result columns. In the prepare query mode the
// description is also a named statement on the server, which costs the
// server memory until it is deallocated; these are kept bounded:
//
//   - statements the driver prepares for calls that did not ask for it
//     live in an LRU of statement_cache_capacity entries; what it evicts
//     is deallocated;
//   - statements prepared explicitly (db.Prepare, tx.Prepare) and not
//     already in the LRU are held by their driver statements, counted, and
//     deallocated when the last one closes.
//
// Deallocations wait in drops until the session's next statement, when
// its holder sends them (see flushDrops): a driver statement is often
// closed while database/sql has parked its connection, or from a
// connection that meanwhile holds another session, and a description the
// server never got to see the end of (a failed nullability lookup) must
// not stay prepared under a name nothing will use.

// sync brings the session up to date with the pool's converter registry
// and plans the decoding of every description it knows again. It does no
// I/O and is cheap when nothing changed: one atomic load.
func (s *session) sync() error {
	if !s.sh.reg.changedSince(s.regVersion) {
		return nil
	}
	v, err := s.sh.reg.apply(&s.codecs, s.regVersion)
	if err != nil {
		return err
	}
	s.regVersion = v
	plan := func(d *stmtDesc) { d.plan(&s.codecs) }
	s.stmts.each(plan)
	for _, d := range s.prepared {
		plan(d)
	}
	return nil
}

// lookup returns the description of sql known on this connection, if any.
func (s *session) lookup(sql string) *stmtDesc {
	if d := s.stmts.get(sql); d != nil {
		return d
	}
	return s.prepared[sql]
}

// describe returns the description of sql on this connection, describing
// it when it is not known; n decides whether a new one is named. A text
// that would be named by default is described unnamed and not cached the
// first time it runs (see stmtCache.ranBefore).
func (s *session) describe(ctx context.Context, sql string, n naming) (*stmtDesc, error) {
	if d := s.lookup(sql); d != nil {
		return d, nil
	}
	once := n == namingDefault && s.named(n) && !s.stmts.ranBefore(sql)
	if once {
		n = namingUnnamed
	}
	d, err := s.newDesc(ctx, sql, n)
	if err != nil || once {
		return d, err
	}
	if old := s.stmts.put(d); old != nil {
		s.drop(old)
	}
	return d, nil
}

// prepare returns the description of sql for an explicitly prepared
// statement, and whether the statement holds it (and must unpin it when
// it closes). A description the LRU already has stays the LRU's.
func (s *session) prepare(ctx context.Context, sql string) (d *stmtDesc, held bool, err error) {
	if d := s.stmts.get(sql); d != nil {
		return d, false, nil
	}
	if d := s.prepared[sql]; d != nil {
		d.refs++
		return d, true, nil
	}
	if d, err = s.newDesc(ctx, sql, namingDefault); err != nil {
		return nil, false, err
	}
	if d.sd.Name == "" {
		// Nothing to free on the server: the LRU may keep it.
		if old := s.stmts.put(d); old != nil {
			s.drop(old)
		}
		return d, false, nil
	}
	if s.prepared == nil {
		s.prepared = make(map[string]*stmtDesc)
	}
	d.refs = 1
	s.prepared[sql] = d
	return d, true, nil
}

// newDesc describes sql on the server, prepared under a new name or as
// the unnamed statement, and plans its decoding. A named statement whose
// description cannot be completed is deallocated, so none is left that
// nothing will use.
func (s *session) newDesc(ctx context.Context, sql string, n naming) (*stmtDesc, error) {
	name := ""
	if s.named(n) {
		name = s.stmts.nextName()
	}
	sd, err := s.pg.Prepare(ctx, name, sql, nil)
	if err != nil {
		if name != "" && s.cancel.fired.Load() {
			// The server may have prepared it before the cancel landed.
			s.drops = append(s.drops, name)
		}
		return nil, err
	}
	d := &stmtDesc{sql: sql, sd: sd, changesSession: changesSession(sql)}
	if tables := s.sh.nulls.unknownTables(sd.Fields); len(tables) > 0 {
		if err := s.learnNullability(ctx, tables); err != nil {
			s.drop(d)
			return nil, err
		}
	}
	d.plan(&s.codecs)
	return d, nil
}

// drop arranges for d's statement to be deallocated before the next one.
func (s *session) drop(d *stmtDesc) {
	if d.sd.Name != "" {
		s.drops = append(s.drops, d.sd.Name)
	}
}

// unpin releases one driver statement's hold on d, which it got from
// prepare. The caller holds the session; see closeLater otherwise.
func (s *session) unpin(d *stmtDesc) {
	d.refs--
	if d.refs > 0 {
		return
	}
	if s.prepared[d.sql] == d {
		delete(s.prepared, d.sql)
	}
	s.drop(d)
}

// flushDrops, run by the holder before a statement, deallocates the
// statements that nothing uses any more, in one round trip each. It waits
// while a transaction is open, which may be in a failed state. A
// deallocation that fails stays pending for the next statement.
//
// It sends DEALLOCATE rather than calling pgconn's Deallocate, which
// returns at an error without reading the ReadyForQuery that follows it:
// after a cancel that left the next statement one answer behind. A name
// the server does not know (a Prepare cancelled before it ran) is no
// error here.
func (s *session) flushDrops(ctx context.Context) error {
	for _, d := range s.closed.take() {
		s.unpin(d)
	}
	if len(s.drops) == 0 || s.begin != "" || s.pg.TxStatus() != 'I' {
		return nil
	}
	for len(s.drops) > 0 {
		_, err := s.pg.Exec(ctx, "DEALLOCATE "+s.drops[0]).ReadAll()
		if err != nil && !isCode(err, "26000") {
			return s.finish(ctx, err)
		}
		s.drops = s.drops[1:]
	}
	s.drops = nil
	return nil
}

// forget drops sql's description after the server said it changed or no
// longer exists. A held description leaves the map for lookups and is
// deallocated when its last statement closes.
func (s *session) forget(sql string) {
	if d := s.stmts.remove(sql); d != nil {
		s.drop(d)
		return
	}
	if d := s.prepared[sql]; d != nil {
		delete(s.prepared, sql)
	}
}

// retryStale reports whether a statement's first attempt, which ended with
// err, may run again because its description d went stale; outside a
// transaction the failed attempt cost nothing. A cancelled one is not
// retried. It forgets the description.
func (s *session) retryStale(d *stmtDesc, err error, attempt int) bool {
	if err == nil || !isStaleStatement(err) {
		return false
	}
	if isCode(err, "26000") {
		s.nameLost(d)
	}
	if attempt > 0 || s.cancel.fired.Load() || s.pg.TxStatus() != 'I' {
		return false
	}
	s.sh.stats.staleRetries.Add(1)
	s.forget(d.sql)
	return true
}

// finishStmt is finish for the statement sql: when the server says its
// cached description went stale, the description is forgotten, so that the
// next execution describes it again.
func (s *session) finishStmt(ctx context.Context, sql string, err error) error {
	err = s.finish(ctx, err)
	if err != nil && isStaleStatement(err) {
		s.forget(sql)
	}
	return err
}
