package pgpurepy

import (
	"context"
	"database/sql/driver"
)

// stmt is a prepared statement. The description lives in the connection's
// statement cache, so a stmt is only its SQL: executing it finds the cached
// statement, or prepares it again if the cache dropped it.
type stmt struct {
	c        *conn
	sql      string
	numInput int
}

var (
	_ driver.Stmt             = (*stmt)(nil)
	_ driver.StmtExecContext  = (*stmt)(nil)
	_ driver.StmtQueryContext = (*stmt)(nil)
)

// Close does nothing: the statement stays in the connection's cache.
func (st *stmt) Close() error { return nil }

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
