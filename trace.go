package pgpurepy

import (
	"context"
	"database/sql"
	"database/sql/driver"

	"github.com/jackc/pgx/v5/pgconn"
)

// Tracer is told of every statement the pool runs, through database/sql and
// through the extension, so that OpenTelemetry spans or metrics can be wired
// without wrapping the driver. Set it in Config.Tracer; nil costs nothing.
// A Tracer that also implements TxTracer, AcquireTracer, ConnectTracer or
// CancelTracer is told of those events too.
//
// TraceQueryStart may return a derived context (carrying a span); the same
// context is passed to TraceQueryEnd. Neither may block: they run on the
// statement's goroutine.
type Tracer interface {
	TraceQueryStart(ctx context.Context, sql string, args []driver.NamedValue) context.Context
	// TraceQueryEnd gets the command tag ("SELECT 3", "UPDATE 1") and the
	// statement's error, nil on success.
	TraceQueryEnd(ctx context.Context, commandTag string, err error)
}

// TxTracer is told of every transaction begun through database/sql's
// BeginTx or the extension's CheckoutInTransaction (a Transaction inside one
// is a savepoint, not a transaction of its own). The context TraceTxStart
// returns is passed to TraceTxEnd, which gets whether the transaction
// committed and the error of its commit or rollback.
type TxTracer interface {
	TraceTxStart(ctx context.Context, opts sql.TxOptions) context.Context
	TraceTxEnd(ctx context.Context, committed bool, err error)
}

// AcquireTracer is told of every checkout of a connection from the pool (by
// a statement through database/sql, a *sql.Conn, a transaction or the
// extension), so that the time spent waiting for one can be seen. The
// context TraceAcquireStart returns is passed to TraceAcquireEnd, which gets
// the checkout's error (the caller's context ended, or the server is down).
type AcquireTracer interface {
	TraceAcquireStart(ctx context.Context) context.Context
	TraceAcquireEnd(ctx context.Context, err error)
}

// ConnectTracer is told of every connection the pool opens: cc holds the
// settings it connects with (after Config.BeforeConnect). The context
// TraceConnectStart returns is passed to TraceConnectEnd, which gets the
// server process id of the new connection, or the connect error.
type ConnectTracer interface {
	TraceConnectStart(ctx context.Context, cc *pgconn.Config) context.Context
	TraceConnectEnd(ctx context.Context, pid uint32, err error)
}

// CancelTracer is told when a connection whose statement was cancelled (its
// context ended) has recovered and serves again (kept), or was given up and
// is replaced. It runs in the background, on the recovery's goroutine.
type CancelTracer interface {
	TraceCancelEnd(pid uint32, kept bool)
}

// tracers are Config.Tracer's interfaces, found once.
type tracers struct {
	query   Tracer
	tx      TxTracer
	acquire AcquireTracer
	connect ConnectTracer
	cancel  CancelTracer
}

func newTracers(t Tracer) tracers {
	tr := tracers{query: t}
	tr.tx, _ = t.(TxTracer)
	tr.acquire, _ = t.(AcquireTracer)
	tr.connect, _ = t.(ConnectTracer)
	tr.cancel, _ = t.(CancelTracer)
	return tr
}

type txTraceKey struct{}

// TxTraceContext returns, from the context TraceQueryStart gets for a
// statement that runs in a transaction, the context the TxTracer's
// TraceTxStart returned for that transaction; nil outside a transaction or
// without a TxTracer. database/sql and the extension pass a transaction's
// statements the caller's context, not the transaction's: a tracer uses
// this to make the transaction's span their parent.
func TxTraceContext(ctx context.Context) context.Context {
	c, _ := ctx.Value(txTraceKey{}).(context.Context)
	return c
}
