package pgpurepy

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy/internal/wire"
)

var (
	// ErrTxRolledBack is returned by a commit that the server answered with
	// ROLLBACK, because a statement in the transaction had failed.
	ErrTxRolledBack = errors.New("pgpurepy: commit failed: the transaction had failed and was rolled back")

	// ErrNoLastInsertID is returned by Result.LastInsertId: PostgreSQL has no
	// such value; add RETURNING id to the statement and scan it instead.
	ErrNoLastInsertID = errors.New("pgpurepy: LastInsertId is not supported by PostgreSQL, use INSERT ... RETURNING")

	// ErrNotPgpurepy is returned by Ext for a *sql.DB of another driver.
	ErrNotPgpurepy = errors.New("pgpurepy: not a pgpurepy *sql.DB")

	// ErrNoRows is returned by FetchOne when the query returned no row. It
	// wraps sql.ErrNoRows, so errors.Is(err, sql.ErrNoRows) holds.
	ErrNoRows = fmt.Errorf("pgpurepy: no rows in result set: %w", sql.ErrNoRows)

	// ErrNotificationsMissed is wrapped by the error of the element a
	// Listener yields after it lost its connection and listens again, on
	// a new one: notifications sent in between may have been missed. The
	// error also wraps what ended the old connection. Iteration goes on.
	ErrNotificationsMissed = errors.New("pgpurepy: listener reconnected: notifications may have been missed")
)

// ArgumentError reports an argument that cannot be sent: its position ($1 is
// 1), its Go type and, when known, the PostgreSQL type of the parameter.
// Nothing was sent to the server, and the connection is unaffected.
type ArgumentError struct {
	Position int
	GoType   string
	PgType   string
	Err      error
}

// Error names the argument's position and types.
func (e *ArgumentError) Error() string {
	if e.PgType == "" {
		return fmt.Sprintf("pgpurepy: argument $%d of Go type %s: %v", e.Position, e.GoType, e.Err)
	}
	return fmt.Sprintf("pgpurepy: argument $%d of Go type %s for parameter of type %s: %v", e.Position, e.GoType, e.PgType, e.Err)
}

// Unwrap returns the encoder's error.
func (e *ArgumentError) Unwrap() error { return e.Err }

// DecodeError reports a column value that could not be decoded: the
// column's name, its PostgreSQL type and the Go type it was decoded into.
// The rest of the result is still read, so the connection stays usable.
type DecodeError struct {
	Column string
	PgType string
	GoType string
	Err    error
}

// Error names the column and both types.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("pgpurepy: column %q of type %s into Go %s: %v", e.Column, e.PgType, e.GoType, e.Err)
}

// Unwrap returns the decoder's error.
func (e *DecodeError) Unwrap() error { return e.Err }

// BatchError is the error of one statement of a batch: its index in the
// batch (0 for the first statement queued) and what went wrong, which
// errors.As and errors.Is reach (a *pgconn.PgError, an *ArgumentError, the
// context's error).
type BatchError struct {
	Index int
	Err   error
}

// Error names the statement and its error.
func (e *BatchError) Error() string {
	return fmt.Sprintf("pgpurepy: batch statement %d: %s", e.Index, strings.TrimPrefix(e.Err.Error(), "pgpurepy: "))
}

// Unwrap returns the statement's error.
func (e *BatchError) Unwrap() error { return e.Err }

// CopyError reports a row that CopyFrom could not send: its number (the
// first row is 1) and, when one value is at fault, its column, the
// column's PostgreSQL type and the value's Go type. The copy was aborted,
// so the table is unchanged, and the connection is unaffected.
type CopyError struct {
	Row    int
	Column string
	PgType string
	GoType string
	Err    error
}

// Error names the row and, when known, the column and both types.
func (e *CopyError) Error() string {
	s := fmt.Sprintf("pgpurepy: copy row %d", e.Row)
	if e.Column != "" {
		s += fmt.Sprintf(", column %q", e.Column)
	}
	if e.PgType != "" {
		s += " of type " + e.PgType
	}
	if e.GoType != "" {
		s += ", Go type " + e.GoType
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the encoder's error.
func (e *CopyError) Unwrap() error { return e.Err }

// isCode reports whether err is a server error with SQLSTATE code.
func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// isCopyFail reports whether err is the server's answer to a CopyFail: it
// has the SQLSTATE of a cancelled statement, but no cancel request caused
// it.
func isCopyFail(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "57014" && pgErr.Routine == wire.CopyFailRoutine
}

// cancelledError is what a statement returns when its context ended while
// it ran: see session.cancelled.
type cancelledError struct {
	ctxErr  error
	cause   error // the server's error, if it came in time
	timeout error // pgconn's timeout error, after a deadline
}

func (e *cancelledError) Error() string {
	if e.cause != nil {
		return "pgpurepy: " + e.ctxErr.Error() + ": " + e.cause.Error()
	}
	return "pgpurepy: " + e.ctxErr.Error() + ": the server was asked to cancel the statement"
}

// Unwrap returns the context's error and, when there are, the server's and
// pgconn's timeout error.
func (e *cancelledError) Unwrap() []error {
	errs := []error{e.ctxErr}
	for _, err := range []error{e.cause, e.timeout} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
