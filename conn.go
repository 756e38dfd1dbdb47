package pgpurepy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy/internal/pool"
)

// conn is a connection as database/sql sees it. database/sql uses a driver
// connection from one goroutine at a time, so conn has no mutex.
//
// A conn holds a session of our pool only while database/sql uses it: when
// database/sql parks the conn in its own idle list it first asks IsValid,
// and IsValid gives the session back to our pool. The next use starts with
// ResetSession, which checks a session out again. So connections never sit
// idle where our pool cannot hand them to a waiter, and the pool's idle and
// waiting counts are exact whatever database/sql's idle limit is. Inside a
// transaction or a *sql.Conn database/sql does not park the conn, so session
// state (SET, temporary tables) lasts as long as they do.
//
// With multiplexing on, a conn binds no session until a statement needs
// one of its own (see multiplexer): its other statements are multiplexed.
type conn struct {
	pool *pool.Pool[*session]
	sh   *shared
	// standby is the pool's standby pool, nil unless its DSN lists several
	// hosts (see PreferStandby).
	standby *standby
	// mux is the pool's multiplexer with multiplexing on, else nil.
	mux multiplexer
	// s and res are the bound session; nil while parked.
	s   *session
	res *pool.Resource[*session]
	// routed is set while s is bound for one statement whose context asks
	// for a standby. The statement's end gives s back, so that the next
	// statement, of a *sql.Conn say, binds afresh and a write never
	// inherits a standby's session.
	routed bool
	// txTrace is the TxTracer's context of the transaction open on c, which
	// its statements' TraceQueryStart can read with TxTraceContext.
	txTrace context.Context

	// closePool is set for connections made by Driver.Open, which own a
	// private pool.
	closePool io.Closer
	// resetState has the release reset session state the holder left (the
	// extension's Checkout; see session.reset).
	resetState bool
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
)

// Prepare is the context-free form of PrepareContext.
func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext describes query on the server (and, in the prepare query
// mode, keeps it prepared in the connection's statement cache).
func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if err := c.bindStmt(ctx); err != nil {
		return nil, err
	}
	if c.routed {
		// The statement runs on whatever session its conn holds then,
		// and prepares itself there (see stmt).
		defer c.unbind()
	}
	s := c.s
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if s.carryBegin() {
		defer s.landBegin()
	}
	d, held, err := s.prepare(ctx, query)
	if err != nil {
		return nil, s.finish(ctx, err)
	}
	st := &stmt{c: c, sql: query, numInput: len(d.sd.ParamOIDs)}
	if held {
		st.s, st.d = s, d
	}
	return st, nil
}

// Close returns the session to the pool. A transaction the caller left open
// is rolled back first; a broken connection is closed and replaced.
func (c *conn) Close() error {
	c.unbind()
	if c.closePool != nil {
		return c.closePool.Close()
	}
	return nil
}

// multiplexer runs the statements of conns that hold no session on
// connections shared with other callers' statements (mux.go,
// multiplexing=on).
type multiplexer interface {
	// route says where query, with options o, runs.
	route(query string, o *queryOptions) route
	// exec and query run query, which route sent to the multiplexer, and
	// return once it ended: its rows are read in full. When ctx ends
	// first they return at once with an error wrapping ctx.Err(); the
	// statement is then either never sent or runs to its end on the
	// server, uncancelled.
	exec(ctx context.Context, query string, args []driver.NamedValue, o *queryOptions) (pgconn.CommandTag, error)
	query(ctx context.Context, query string, args []driver.NamedValue, o *queryOptions) (driver.Rows, pgconn.CommandTag, error)
	// ranAlone tells how long query, which route sent to a session of
	// the conn's own because it was slow, took there. It is told only of
	// runs that succeeded: one cut short by its context or an error says
	// nothing of how long the text runs.
	ranAlone(query string, took time.Duration)
}

// route is where a statement of a conn runs.
type route uint8

const (
	// routeOwn: on the conn's own session, as without multiplexing.
	routeOwn route = iota
	// routeMux: through the multiplexer.
	routeMux
	// routeSlow: on the conn's own session because the text ran slowly
	// when it was multiplexed; the time it takes there is reported back.
	routeSlow
)

// route says where c runs query: only a conn that holds no session
// multiplexes, because a bound one may hold a transaction or session
// state its statements must see, and a statement marked for a standby
// goes there (see PreferStandby).
func (c *conn) route(ctx context.Context, query string, o *queryOptions) route {
	if c.mux == nil || c.s != nil || c.waitsForStatement(ctx) {
		return routeOwn
	}
	return c.mux.route(query, o)
}

// bind checks a session out for c if it has none, waiting in line (first
// come, first served) bounded by ctx.
func (c *conn) bind(ctx context.Context) error {
	if c.s != nil {
		return nil
	}
	return c.acquire(ctx, false)
}

// waitsForStatement reports whether a conn without a session should stay
// so until its next call: database/sql checks a conn out (Connect,
// ResetSession) before it says what for, and with a context that asks for
// a standby only the call tells an autocommit statement, which goes there,
// from a transaction, which does not.
func (c *conn) waitsForStatement(ctx context.Context) bool {
	return c.standby != nil && c.s == nil && prefersStandby(ctx)
}

// bindStmt binds c for a statement outside a transaction or a Prepare.
// When ctx asks for a standby and c holds no session (see
// waitsForStatement), it takes one for this statement only (routed).
func (c *conn) bindStmt(ctx context.Context) error {
	if !c.waitsForStatement(ctx) {
		return c.bind(ctx)
	}
	if err := c.acquire(ctx, true); err != nil {
		return err
	}
	c.routed = true
	return nil
}

// acquire checks a session out for c: from the standby pool when
// onStandby is set and a standby can be reached, else from the pool.
func (c *conn) acquire(ctx context.Context, onStandby bool) error {
	at := c.sh.trace.acquire
	if at != nil {
		ctx = at.TraceAcquireStart(ctx)
	}
	var (
		res *pool.Resource[*session]
		err error
	)
	if onStandby {
		res, err = c.standby.acquire(ctx)
		if res != nil {
			c.sh.stats.standbyStatements.Add(1)
		}
	}
	if res == nil && err == nil {
		res, err = c.pool.Acquire(ctx)
	}
	var open *pool.OpenError
	switch {
	case err == nil:
	case errors.As(err, &open):
		// The dial's own error says what went wrong and where.
		err = open.Err
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		err = fmt.Errorf("pgpurepy: waiting for a connection: %w", ctx.Err())
	default:
		err = fmt.Errorf("pgpurepy: acquire connection: %w", err)
	}
	if at != nil {
		at.TraceAcquireEnd(ctx, err)
	}
	if err != nil {
		return err
	}
	c.s, c.res = res.Value(), res
	return nil
}

// unbind gives c's session back to the pool it came from, or has it
// replaced when it cannot be reused.
func (c *conn) unbind() {
	if c.s == nil {
		return
	}
	c.s.release(c.res, c.resetState)
	c.s, c.res, c.txTrace, c.routed = nil, nil, nil, false
}

// Begin is the context-free form of BeginTx.
func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx starts a transaction with the isolation level and access mode of
// opts. It checks a connection out but sends nothing: the BEGIN goes to the
// server with the transaction's first statement, in the same round trip
// (see begin.go), and a transaction that runs no statement costs
// none. An error of the BEGIN itself, which a healthy server does not
// give, is therefore the first statement's.
func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	begin, err := beginSQL(sql.IsolationLevel(opts.Isolation), opts.ReadOnly)
	if err != nil {
		return nil, err
	}
	if err := c.bind(ctx); err != nil {
		return nil, err
	}
	if err := c.s.start(ctx); err != nil {
		return nil, err
	}
	c.s.begin = begin
	t := &tx{c: c}
	if tt := c.sh.trace.tx; tt != nil {
		t.traceCtx = tt.TraceTxStart(ctx, sql.TxOptions{Isolation: sql.IsolationLevel(opts.Isolation), ReadOnly: opts.ReadOnly})
		c.txTrace = t.traceCtx
	}
	return t, nil
}

// ExecContext runs query and reports the rows it affected. Text with
// several statements (and no arguments) runs with the simple protocol.
func (c *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	query, args, opts, err := takeOptions(ctx, query, args)
	if err != nil {
		return nil, err
	}
	rt := c.route(ctx, query, &opts)
	if rt != routeMux {
		if err := c.bindStmt(ctx); err != nil {
			return nil, err
		}
	}
	ctx = c.traceStart(ctx, query, args)
	var tag pgconn.CommandTag
	switch rt {
	case routeMux:
		tag, err = c.mux.exec(ctx, query, args, &opts)
	case routeSlow:
		began := time.Now()
		tag, err = c.exec(ctx, query, args, &opts)
		if err == nil {
			c.mux.ranAlone(query, time.Since(began))
		}
	default:
		tag, err = c.exec(ctx, query, args, &opts)
	}
	c.traceEnd(ctx, tag.String(), err)
	c.endRouted()
	if err != nil {
		return nil, err
	}
	return result(tag.RowsAffected()), nil
}

func (c *conn) exec(ctx context.Context, query string, args []driver.NamedValue, o *queryOptions) (pgconn.CommandTag, error) {
	if len(args) == 0 && !singleStatement(query) {
		return c.execSimple(ctx, query)
	}
	_, _, tag, err := c.s.run(ctx, query, args, o, false)
	return tag, err
}

// execSimple runs query with the simple protocol and returns the last
// statement's command tag.
func (c *conn) execSimple(ctx context.Context, query string) (pgconn.CommandTag, error) {
	mrr, err := c.s.execSimple(ctx, query)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	var tag pgconn.CommandTag
	for mrr.NextResult() {
		tag, _ = mrr.ResultReader().Close()
	}
	if err := c.s.finish(ctx, mrr.Close()); err != nil {
		return pgconn.CommandTag{}, err
	}
	return tag, nil
}

// QueryContext runs query and streams its rows. Text with several
// statements (and no arguments) runs with the simple protocol, and the
// result sets after the first are reached with NextResultSet.
//
// A multiplexed query (see multiplexer) has ended when QueryContext
// returns: its rows were read in full, and Next hands them out.
func (c *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	query, args, opts, err := takeOptions(ctx, query, args)
	if err != nil {
		return nil, err
	}
	rt := c.route(ctx, query, &opts)
	if rt == routeMux {
		ctx = c.traceStart(ctx, query, args)
		r, tag, err := c.mux.query(ctx, query, args, &opts)
		c.traceEnd(ctx, tag.String(), err)
		return r, err
	}
	if err := c.bindStmt(ctx); err != nil {
		return nil, err
	}
	ctx = c.traceStart(ctx, query, args)
	var began time.Time
	if rt == routeSlow {
		began = time.Now()
	}
	r, err := c.query(ctx, query, args, &opts)
	if rt == routeSlow && err == nil {
		// Up to its first row: what held up the statements behind it.
		c.mux.ranAlone(query, time.Since(began))
	}
	if err != nil {
		c.traceEnd(ctx, "", err)
		c.endRouted()
		return nil, err
	}
	return r, nil
}

// endRouted gives back the session of a routed statement that ended (see
// conn.routed); rows.Close calls it for a query.
func (c *conn) endRouted() {
	if c.routed {
		c.unbind()
	}
}

func (c *conn) query(ctx context.Context, query string, args []driver.NamedValue, o *queryOptions) (*rows, error) {
	if len(args) == 0 && !singleStatement(query) {
		mrr, err := c.s.execSimple(ctx, query)
		if err != nil {
			return nil, err
		}
		r := &rows{c: c, ctx: ctx, mrr: mrr}
		if err := r.nextResult(); err != nil {
			return nil, err
		}
		return r, nil
	}
	rr, d, tag, err := c.s.run(ctx, query, args, o, true)
	if err != nil {
		return nil, err
	}
	if rr == nil {
		// It ended before its first row.
		c.traceEnd(ctx, tag.String(), nil)
		return &rows{c: c, ctx: ctx, sql: query, finished: true}, nil
	}
	r := &rows{c: c, ctx: ctx, rr: rr, sql: query, fields: d.sd.Fields, columns: d.columns, decoders: d.decoders}
	switch fields := rr.FieldDescriptions(); {
	case !sameTypes(fields, d.sd.Fields):
		// In describe mode the server describes the result again with
		// every execution; it changed (search_path, DDL), so decode by
		// what it says now and describe afresh next time.
		c.s.forget(query)
		r.plan(fields)
	case o.formats != nil || o.formatsByOID != nil:
		r.plan(fields)
	}
	return r, nil
}

func sameTypes(a, b []pgconn.FieldDescription) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].DataTypeOID != b[i].DataTypeOID {
			return false
		}
	}
	return true
}

// Ping makes one round trip. A failure marks the connection bad so that
// database/sql replaces it.
func (c *conn) Ping(ctx context.Context) error {
	if err := c.bind(ctx); err != nil {
		return err
	}
	if err := c.s.start(ctx); err != nil {
		return err
	}
	if err := c.s.finish(ctx, c.s.pg.Ping(ctx)); err != nil {
		if ctx.Err() == nil && !c.s.healthy() {
			return fmt.Errorf("%w: %w", driver.ErrBadConn, err)
		}
		return err
	}
	return nil
}

// ResetSession runs before database/sql reuses a parked connection: it
// checks a session out of the pool, waiting in line with every other caller
// and bounded by ctx. The pool's checkout runs the health check. With
// multiplexing on, or with a context marked by PreferStandby, it leaves the
// checkout to the call that follows (see conn and waitsForStatement).
func (c *conn) ResetSession(ctx context.Context) error {
	if c.s != nil && !c.s.healthy() {
		return driver.ErrBadConn
	}
	if c.mux != nil || c.waitsForStatement(ctx) {
		return nil
	}
	return c.bind(ctx)
}

// IsValid is called by database/sql when it takes the connection back. It
// reports whether the connection may be reused and, if it may, gives the
// session back to the pool (see conn). After a cancelled statement it
// normally may: the cancellation kept the session.
func (c *conn) IsValid() bool {
	if c.s == nil {
		return true
	}
	if !c.s.healthy() {
		return false
	}
	c.unbind()
	return true
}

// CheckNamedValue accepts every argument that can be sent to PostgreSQL as
// it is, so that slices, registered converter types and pgtype values reach
// the encoder unchanged. It rejects Go types that can never be encoded,
// naming the type and the argument's position.
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	switch nv.Value.(type) {
	case nil, int64, float64, bool, string, []byte, time.Time, int, int32, driver.Valuer:
		return nil
	}
	switch reflect.TypeOf(nv.Value).Kind() {
	case reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
		return &ArgumentError{Position: nv.Ordinal, GoType: fmt.Sprintf("%T", nv.Value), Err: errors.New("type cannot be sent to PostgreSQL")}
	}
	return nil
}

type result int64

func (r result) RowsAffected() (int64, error) { return int64(r), nil }

func (result) LastInsertId() (int64, error) { return 0, ErrNoLastInsertID }

func (c *conn) traceStart(ctx context.Context, query string, args []driver.NamedValue) context.Context {
	if t := c.sh.trace.query; t != nil {
		if c.txTrace != nil {
			ctx = context.WithValue(ctx, txTraceKey{}, c.txTrace)
		}
		return t.TraceQueryStart(ctx, query, args)
	}
	return ctx
}

func (c *conn) traceEnd(ctx context.Context, tag string, err error) {
	if t := c.sh.trace.query; t != nil {
		t.TraceQueryEnd(ctx, tag, err)
	}
}
