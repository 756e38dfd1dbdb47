package pgpurepy

import (
	"context"
	"database/sql/driver"
)

// stmt is a prepared statement. Executing it runs its SQL as any statement
// is run: on the session its conn holds at the time, which finds the
// statement prepared, or prepares it when the statement was prepared on
// another session (database/sql parks conns between uses, and a parked
// conn holds no session; see conn).
type stmt struct {
	c        *conn
	sql      string
	numInput int
	// s and d are the session and description the statement holds when
	// it prepared a named statement of its own (see session.prepare).
	s *session
	d *stmtDesc
}

var (
	_ driver.Stmt             = (*stmt)(nil)
	_ driver.StmtExecContext  = (*stmt)(nil)
	_ driver.StmtQueryContext = (*stmt)(nil)
)

// Close frees the statement on the server when no other open statement
// uses it and the statement cache did not already hold it. When the conn
// holds another session, or none, the session's next holder frees it
// before its next statement. It does no I/O and never fails.
func (st *stmt) Close() error {
	if st.d == nil {
		return nil
	}
	if st.c.s == st.s {
		st.s.unpin(st.d)
	} else {
		st.s.closed.add(st.d)
	}
	st.s, st.d = nil, nil
	return nil
}

// NumInput is the number of parameters the server found in the statement.
func (st *stmt) NumInput() int { return st.numInput }

// Exec is the context-free form of ExecContext.
func (st *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return st.ExecContext(context.Background(), appendNamed(nil, args))
}

// Query is the context-free form of QueryContext.
func (st *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return st.QueryContext(context.Background(), appendNamed(nil, args))
}

// ExecContext runs the statement with args.
func (st *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return st.c.ExecContext(ctx, st.sql, args)
}

// QueryContext runs the statement with args and streams its rows.
func (st *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return st.c.QueryContext(ctx, st.sql, args)
}
