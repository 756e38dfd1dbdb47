package pgpurepy

import (
	"context"
	"database/sql/driver"
	"fmt"
)

// tx is a transaction on one conn.
type tx struct {
	c *conn
	// traceCtx is the TxTracer's context, when there is one.
	traceCtx context.Context
}

var _ driver.Tx = (*tx)(nil)

// Commit commits. When the server answers COMMIT with ROLLBACK because the
// transaction had failed, Commit returns ErrTxRolledBack: never a silent
// success.
func (t *tx) Commit() error { return t.commit(context.Background()) }

// commit sends COMMIT bounded by ctx: database/sql's Commit has no context,
// the extension's CheckoutInTransaction passes the caller's.
func (t *tx) commit(ctx context.Context) (err error) {
	defer func() { t.traceEnd(err == nil, err) }()
	if t.c.s.unsentBegin() {
		return nil
	}
	tag, err := t.c.execSimple(ctx, "COMMIT")
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		return ErrTxRolledBack
	}
	return nil
}

// traceEnd tells the TxTracer, if any, how the transaction ended.
func (t *tx) traceEnd(committed bool, err error) {
	if t.traceCtx != nil {
		t.c.sh.trace.tx.TraceTxEnd(t.traceCtx, committed, err)
		t.traceCtx, t.c.txTrace = nil, nil
	}
}

// Rollback rolls back with a context of its own, bounded by the cancel
// grace, because database/sql calls it after the transaction's context
// ended; after a cancelled statement it first waits, within the same bound,
// for the connection to recover. On a connection found broken meanwhile
// (lost, or its BEGIN cancelled before it ran) nothing of the transaction
// can commit, and Rollback succeeds: database/sql then finds the
// connection invalid and the pool replaces it. A connection that cannot
// roll back is reported bad and replaced.
func (t *tx) Rollback() (err error) {
	defer func() { t.traceEnd(false, err) }()
	s := t.c.s
	ctx, cancel := s.rollbackCtx()
	defer cancel()
	if err := s.ready(ctx); err != nil {
		if s.broken != nil {
			return nil
		}
		return err
	}
	if s.unsentBegin() {
		return nil
	}
	_, err = s.pg.Exec(ctx, "ROLLBACK").ReadAll()
	if err := s.finish(ctx, err); err != nil {
		// healthy, not IsValid: IsValid hands the session back to the
		// pool, and a Checkout still holds it.
		if !s.healthy() {
			return fmt.Errorf("%w: %w", driver.ErrBadConn, err)
		}
		return err
	}
	return nil
}
