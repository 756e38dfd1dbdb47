package pgpurepy

import (
	"context"
	"database/sql/driver"
)

// Batch is a list of statements that SendBatch sends to the server in one
// write and whose results it reads, in order, in one round trip. The zero
// value is an empty batch. SendBatch does not change a Batch: one may be
// sent again, also from several goroutines at once, as long as nothing is
// queued to it meanwhile.
type Batch struct {
	stmts []queued
}

// queued is one statement as Queue took it.
type queued struct {
	sql  string
	args []any
}

// Queue adds the statement sql, with its arguments for $1, $2, ..., to the
// batch and returns its index in SendBatch's results. sql is one statement.
// Nothing is checked now: the arguments are encoded when the batch is sent,
// and one that does not fit fails SendBatch before anything runs. They take
// the types and pgx's per-statement options (pgx.QueryExecMode,
// pgx.NamedArgs, ...) that Pool.Execute takes.
func (b *Batch) Queue(sql string, args ...any) int {
	b.stmts = append(b.stmts, queued{sql: sql, args: args})
	return len(b.stmts) - 1
}

// Len returns the number of statements queued.
func (b *Batch) Len() int { return len(b.stmts) }

// BatchResult is what one statement of a batch did.
type BatchResult struct {
	// RowsAffected is the count of the statement's command tag: rows
	// inserted, updated or deleted, or returned by a SELECT.
	RowsAffected int64
	// Rows are the rows the statement returned (SELECT, ... RETURNING),
	// decoded as Fetch decodes them; nil when it returned none.
	Rows []*Row
	// Err is the statement's error, nil when it succeeded: the server's
	// (a *pgconn.PgError), a *DecodeError, or, when its result did not
	// arrive, the batch's (the context's, the connection's); its outcome
	// is then unknown.
	Err error
}

// SendBatch runs b on the next free connection: see Conn.SendBatch. The
// connection goes back to the pool when the results are in, or at once
// after a cancellation, whose clean-up it does in the background.
func (x *Pool) SendBatch(ctx context.Context, b *Batch) ([]BatchResult, error) {
	var out []BatchResult
	err := x.with(ctx, func(c *Conn) error {
		var err error
		out, err = c.SendBatch(ctx, b)
		return err
	})
	return out, err
}

// SendBatch sends b's statements to the server in one write and reads their
// results, in order, in one round trip. Statements the connection has not
// run before are first described together, in one more round trip, and
// prepared under a name or not as for a single statement (query_mode),
// except that a connection through a pooler names none in a batch: the
// pooler may serve the description and the execution from two server
// connections.
//
// Each statement ends with a Sync of its own, as if it were sent alone.
// Outside a transaction each runs in an implicit transaction of its own: an
// error in statement k is k's, the others run, and the connection is clean
// afterwards. Inside a transaction (CheckoutInTransaction, Transaction, or
// after a BEGIN the caller sent) an error in k aborts the transaction, as
// PostgreSQL does: the statements after k fail with SQLSTATE 25P02, and the
// commit returns ErrTxRolledBack. A statement that had to be described and
// fails to be (a syntax error, a missing table) fails before any statement
// runs, so in a transaction the others all report 25P02.
//
// A transaction whose BEGIN has not gone to the server yet sends it in
// front of the batch's first statement, in the same write. Should the BEGIN
// fail, or be cancelled as it runs, no later statement runs outside the
// transaction: each is guarded by a cursor that only the transaction keeps
// (the server sees a DECLARE and one MOVE per statement), and the
// connection is replaced, as after a single statement.
//
// results is nil when the batch did not get to run, and err says why: no
// connection, ctx ended before the statements were sent, or a *BatchError
// naming the statement whose arguments cannot be sent (an *ArgumentError
// naming the argument, or a count the statement does not take); no
// statement ran then. Otherwise results has one entry per statement, and
// err is nil when every statement succeeded, or else a *BatchError naming
// the statement that failed first.
//
// When ctx ends while the batch runs, SendBatch returns at once with an
// error that satisfies errors.Is(err, ctx.Err()), as a single statement
// does: the statement running on the server is cancelled and the connection
// is kept, its clean-up done in the background. Statements whose results
// had arrived keep them; the others have that error. Outside a transaction
// the statements after the cancelled one were already on the server and
// may still run: their outcome is unknown.
//
// A statement whose cached description went stale (DDL changed its result)
// fails with the server's error and is described afresh next time, where a
// single statement would run again at once: the statements after it in
// the batch have run already.
func (c *Conn) SendBatch(ctx context.Context, b *Batch) ([]BatchResult, error) {
	if b == nil || len(b.stmts) == 0 {
		return nil, nil
	}
	if err := c.c.bind(ctx); err != nil {
		return nil, err
	}
	stmts := make([]batchStmt, len(b.stmts))
	total := 0
	for _, q := range b.stmts {
		total += len(q.args)
	}
	// One slice holds every statement's arguments, each its own part.
	named := make([]driver.NamedValue, 0, total)
	for i, q := range b.stmts {
		start := len(named)
		named = appendNamed(named, q.args)
		sql, args, opts, err := takeOptions(ctx, q.sql, named[start:len(named):len(named)])
		if err != nil {
			return nil, &BatchError{Index: i, Err: err}
		}
		stmts[i] = batchStmt{sql: sql, args: args, opts: opts}
	}
	c.c.traceBatchStart(ctx, stmts)
	ran, err := c.c.runBatch(ctx, stmts)
	c.c.traceBatchEnd(stmts, ran, err)
	if !ran {
		return nil, err
	}
	results := make([]BatchResult, len(stmts))
	for i, st := range stmts {
		results[i] = BatchResult{RowsAffected: st.tag.RowsAffected(), Rows: st.rows, Err: st.err}
	}
	return results, err
}
