package pgpurepy

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// finish runs after every statement and turns err into what the caller
// should see. After a cancel request it hands the session to a recovery
// (see recovery.go), and returns without waiting for it.
func (s *session) finish(ctx context.Context, err error) error {
	if s.cancel.fired.Load() {
		defer s.startRecovery(err)
	}
	s.checkBegin(err)
	if err == nil {
		return nil
	}
	ctxErr := ctx.Err()
	if s.framer.Owed() {
		// The framer made the error up: what the server says comes later.
		if ctxErr != nil {
			return s.cancelled(ctx, nil)
		}
		return err
	}
	if s.pg.IsClosed() && s.broken == nil {
		s.broken = err
	}
	if isCode(err, "25006") && s.broken == nil && s.sh.failover.checkWritable(ctx, s.pg, s.generation, s.sh.cfg.CancelGrace) != nil {
		// A write reached a server that became read-only under us: keep
		// the error for this caller, replace the connection for the next.
		s.broken = err
	}
	if ctxErr != nil && (isCode(err, "57014") || pgconn.Timeout(err) || errors.Is(err, ctxErr)) {
		if errors.Is(err, ctxErr) {
			return fmt.Errorf("pgpurepy: %w", err)
		}
		return s.cancelled(ctx, err)
	}
	if pgconn.SafeToRetry(err) && s.pg.TxStatus() == 'I' {
		return fmt.Errorf("pgpurepy: %w: %w", driver.ErrBadConn, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return err
	}
	return fmt.Errorf("pgpurepy: %w", err)
}

// isStaleStatement reports errors after which a cached statement must be
// described again: its plan changed result type, it vanished (DISCARD ALL),
// or, in describe mode, its column count changed under the cached result
// formats. The SQLSTATEs are shared with other errors, so the server
// function that raised them tells these apart: the message is translated
// under lc_messages, the function name is not.
func isStaleStatement(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "26000":
		return true
	case "0A000":
		return pgErr.Routine == "RevalidateCachedQuery"
	case "08P01":
		return pgErr.Routine == "PortalSetResultFormat"
	}
	return false
}

// cancelled is the error of a statement cancelled because ctx ended, with
// the server's error, cause, when the server's answer came in time. It
// wraps ctx's error; after a deadline also pgconn's timeout error, so that
// pgconn.Timeout(err) holds, as it does with pgx. pgconn makes that error,
// of a type of its own, for a call whose context is already done, and such
// a call sends nothing: Exec, here, only lends it.
func (s *session) cancelled(ctx context.Context, cause error) error {
	e := &cancelledError{ctxErr: ctx.Err(), cause: cause}
	if errors.Is(e.ctxErr, context.DeadlineExceeded) {
		if err := s.pg.Exec(ctx, "").Close(); pgconn.Timeout(err) {
			e.timeout = err
		}
	}
	return e
}
