package pgpurepy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/pgpurepy/pgpurepy/converters"
)

// Pool is the extension: what database/sql hides about the pool behind a
// *sql.DB, and the pool's own query API. It shares the pool, and so the
// connections and the statistics, with the *sql.DB it came from. All its
// methods are safe for concurrent use.
//
// A connection database/sql keeps in its own idle list holds no server
// session: the session goes back to this pool when database/sql parks the
// connection. So IdleConnections and WaitingTasks are exact for any
// database/sql settings; a connection counts as in use while a statement,
// a transaction or a *sql.Conn holds it.
type Pool struct {
	p *poolState
}

// ErrNotPgpurepy is returned by Ext for a *sql.DB of another driver.
var ErrNotPgpurepy = errors.New("pgpurepy: not a pgpurepy *sql.DB")

// Ext returns the extension of db without any I/O. It works for handles from
// sql.Open("pgpurepy", ...), OpenDB, sql.OpenDB(connector), and the *sql.DB
// under sqlx (sqlxDB.DB) or gorm (gormDB.DB()). For any other *sql.DB it
// returns ErrNotPgpurepy.
func Ext(db *sql.DB) (*Pool, error) {
	d, ok := db.Driver().(*Driver)
	if !ok || d.c == nil {
		return nil, ErrNotPgpurepy
	}
	return d.c.Pool(), nil
}

// Pool returns the extension of the Connector's pool.
func (c *Connector) Pool() *Pool { return &Pool{p: c.p} }

// MaxConnections is the number of connections the pool keeps (the
// connection_count DSN key).
func (x *Pool) MaxConnections() int { return x.p.cfg.ConnectionCount }

// IdleConnections is the number of open connections not checked out right
// now.
func (x *Pool) IdleConnections() int { return x.p.pool.Stats().Idle }

// WaitingTasks is the number of callers blocked waiting for a connection
// right now.
func (x *Pool) WaitingTasks() int { return x.p.pool.Stats().Waiting }

// Stats is one consistent snapshot of the pool, for dashboards.
type Stats struct {
	// MaxConnections, IdleConnections and WaitingTasks are the gauges of the
	// methods of the same names.
	MaxConnections  int
	IdleConnections int
	WaitingTasks    int
	// OpenConnections is idle plus in use; InUse are checked out (by a
	// statement, a transaction, a *sql.Conn, a Checkout, or a recovery);
	// Recovering, of those, are being cleaned up after a cancelled
	// statement and go back to the pool by themselves; Opening are being
	// dialled; Deficit is how many the pool is short of MaxConnections after
	// failures.
	OpenConnections int
	InUse           int
	Recovering      int
	Opening         int
	Deficit         int

	// Acquires counts checkouts; WaitedAcquires those that had to wait, for
	// WaitDuration in total; CanceledAcquires those whose context ended
	// while waiting.
	Acquires         uint64
	WaitedAcquires   uint64
	WaitDuration     time.Duration
	CanceledAcquires uint64

	// ConnectionsOpened counts successful connects, ConnectFailures failed
	// ones, and ConnectionsClosed closed connections by reason ("broken",
	// "unhealthy", "lifetime", "idle_time", "pool_closed", ...).
	ConnectionsOpened uint64
	ConnectFailures   uint64
	ConnectionsClosed map[string]uint64

	// CancelsSent counts cancel requests sent to the server; CancelsKept the
	// cancellations after which the connection went on serving; CancelsLost
	// those after which it had to be closed.
	CancelsSent uint64
	CancelsKept uint64
	CancelsLost uint64

	// Failovers counts changes of the writable server seen by a pool whose
	// DSN asks for one (target_session_attrs=read-write or primary);
	// ReplacedForFailover the connections closed because they were on a
	// server that is no longer writable.
	Failovers           uint64
	ReplacedForFailover uint64
}

// Stats returns a snapshot of the pool's gauges and counters.
func (x *Pool) Stats() Stats {
	ps := x.p.pool.Stats()
	return Stats{
		MaxConnections:    ps.Max,
		IdleConnections:   ps.Idle,
		WaitingTasks:      ps.Waiting,
		OpenConnections:   ps.Total,
		InUse:             ps.InUse,
		Recovering:        int(x.p.stats.recovering.Load()),
		Opening:           ps.Opening,
		Deficit:           ps.Deficit,
		Acquires:          ps.Acquires,
		WaitedAcquires:    ps.WaitedAcquires,
		WaitDuration:      ps.WaitDuration,
		CanceledAcquires:  ps.CanceledAcquires,
		ConnectionsOpened: ps.Opened,
		ConnectFailures:   ps.OpenFailures,
		ConnectionsClosed: ps.Closed,
		CancelsSent:       x.p.stats.cancelsSent.Load(),
		CancelsKept:       x.p.stats.cancelsKept.Load(),
		CancelsLost:       x.p.stats.cancelsLost.Load(),

		Failovers:           x.p.stats.failovers.Load(),
		ReplacedForFailover: x.p.stats.replacedForFailover.Load(),
	}
}

// AddConverter registers c for every connection of the pool: those open now
// apply it before their next statement, those opened later when they
// connect. The type is resolved by name (search_path applies) with one
// catalog query. A type that does not exist, or a converter that does not fit
// the type, gives an error and registers nothing.
func (x *Pool) AddConverter(ctx context.Context, c converters.Converter) error {
	return x.p.register(ctx, c, false)
}

// AddConverterWithArray is AddConverter that also registers the type's array
// type, so that T[] columns come back as []T and []T arguments are sent as
// arrays. It fails when the type has no array type.
func (x *Pool) AddConverterWithArray(ctx context.Context, c converters.Converter) error {
	return x.p.register(ctx, c, true)
}

// Execute runs query on the next free connection and returns the number of
// rows it affected. If ctx ends while the statement runs, the statement is
// cancelled on the server, the connection stays in the pool, and the error
// satisfies errors.Is(err, ctx.Err()).
func (x *Pool) Execute(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := x.with(ctx, func(c *Conn) error {
		var err error
		n, err = c.Execute(ctx, query, args...)
		return err
	})
	return n, err
}

// Fetch runs query on the next free connection and returns all its rows.
func (x *Pool) Fetch(ctx context.Context, query string, args ...any) ([]*Row, error) {
	var out []*Row
	err := x.with(ctx, func(c *Conn) error {
		var err error
		out, err = c.Fetch(ctx, query, args...)
		return err
	})
	return out, err
}

// FetchOne returns the first row of query's result; see Conn.FetchOne.
func (x *Pool) FetchOne(ctx context.Context, query string, args ...any) (*Row, error) {
	var out *Row
	err := x.with(ctx, func(c *Conn) error {
		var err error
		out, err = c.FetchOne(ctx, query, args...)
		return err
	})
	return out, err
}

// FetchOneOrNone returns the first row of query's result, or nil without an
// error when there is none.
func (x *Pool) FetchOneOrNone(ctx context.Context, query string, args ...any) (*Row, error) {
	var out *Row
	err := x.with(ctx, func(c *Conn) error {
		var err error
		out, err = c.FetchOneOrNone(ctx, query, args...)
		return err
	})
	return out, err
}

// Query streams query's rows without buffering them:
//
//	for row, err := range ext.Query(ctx, "SELECT ...") { ... }
//
// The connection is held while the loop runs and goes back to the pool when
// the loop ends, also by break. An error ends the sequence as its last
// element. A Row is valid after its iteration step.
func (x *Pool) Query(ctx context.Context, query string, args ...any) iter.Seq2[*Row, error] {
	return func(yield func(*Row, error) bool) {
		c, err := x.checkout(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		defer c.release()
		for row, err := range c.Query(ctx, query, args...) {
			if !yield(row, err) {
				return
			}
		}
	}
}

// Checkout gives fn exclusive use of one connection and returns it to the
// pool when fn returns, panics, or its context ends, whatever fn left
// behind: an open transaction is rolled back, a broken connection replaced.
// It returns fn's error, or the error of waiting for a connection.
func (x *Pool) Checkout(ctx context.Context, fn func(*Conn) error) error {
	return x.with(ctx, fn)
}

// CheckoutInTransaction runs fn in a transaction on one connection: it
// commits when fn returns nil and rolls back when fn returns an error,
// panics (the panic continues after the rollback) or ctx ends. A commit
// that the server answers with ROLLBACK returns ErrTxRolledBack. The
// rollback runs with its own bounded context, because ctx may be done.
func (x *Pool) CheckoutInTransaction(ctx context.Context, fn func(*Conn) error) error {
	return x.CheckoutInTx(ctx, sql.TxOptions{}, fn)
}

// CheckoutInTx is CheckoutInTransaction with an isolation level and access
// mode.
func (x *Pool) CheckoutInTx(ctx context.Context, opts sql.TxOptions, fn func(*Conn) error) error {
	return x.with(ctx, func(c *Conn) error { return c.inTx(ctx, opts, fn) })
}

func (x *Pool) with(ctx context.Context, fn func(*Conn) error) error {
	c, err := x.checkout(ctx)
	if err != nil {
		return err
	}
	defer c.release()
	return fn(c)
}

func (x *Pool) checkout(ctx context.Context) (*Conn, error) {
	s, res, err := x.p.acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &Conn{c: conn{p: x.p, s: s, res: res}}, nil
}

// Conn is one connection checked out of the pool by Checkout or
// CheckoutInTransaction. It is valid only inside the callback and must not
// be used from several goroutines at once.
type Conn struct {
	c    conn
	inTX bool
	// savepoints counts nested transactions, which are savepoints.
	savepoints int
}

func (c *Conn) release() { _ = c.c.Close() }

// Execute runs query and returns the number of rows it affected.
func (c *Conn) Execute(ctx context.Context, query string, args ...any) (int64, error) {
	nv := c.namedArgs(args)
	res, err := c.c.ExecContext(ctx, query, nv)
	clear(nv) // encoded by now; do not keep the caller's values alive
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Fetch runs query and returns all its rows.
func (c *Conn) Fetch(ctx context.Context, query string, args ...any) ([]*Row, error) {
	var out []*Row
	for row, err := range c.Query(ctx, query, args...) {
		if err != nil {
			return nil, err
		}
		out = append(out, row)
	}
	return out, nil
}

// ErrNoRows is returned by FetchOne when the query returned no row. It wraps
// sql.ErrNoRows, so errors.Is(err, sql.ErrNoRows) holds.
var ErrNoRows = fmt.Errorf("pgpurepy: no rows in result set: %w", sql.ErrNoRows)

// FetchOne returns the first row of query's result, or ErrNoRows. Further
// rows are not decoded: they are read off the wire and discarded, as
// database/sql's QueryRow does.
func (c *Conn) FetchOne(ctx context.Context, query string, args ...any) (*Row, error) {
	row, err := c.FetchOneOrNone(ctx, query, args...)
	if err == nil && row == nil {
		return nil, ErrNoRows
	}
	return row, err
}

// FetchOneOrNone returns the first row of query's result, or nil without an
// error when there is none. Further rows are read off the wire undecoded;
// an error among them is returned, and no row.
func (c *Conn) FetchOneOrNone(ctx context.Context, query string, args ...any) (*Row, error) {
	r, err := c.query(ctx, query, args)
	if err != nil {
		return nil, err
	}
	vals := make([]driver.Value, len(r.columns))
	var row *Row
	switch err = r.Next(vals); {
	case err == nil:
		row = &Row{columns: r.columns, values: vals}
	case errors.Is(err, io.EOF):
		err = nil
	}
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return row, nil
}

// query starts query with args; the caller closes the rows.
func (c *Conn) query(ctx context.Context, query string, args []any) (*rows, error) {
	nv := c.namedArgs(args)
	drows, err := c.c.QueryContext(ctx, query, nv)
	clear(nv) // encoded by now; do not keep the caller's values alive
	if err != nil {
		return nil, err
	}
	return drows.(*rows), nil
}

// Query streams query's rows. An error ends the sequence as its last
// element. break ends it early: the rest of the result is read off the wire
// and discarded, and an error in it can no longer be reported (FetchOne
// reports it).
func (c *Conn) Query(ctx context.Context, query string, args ...any) iter.Seq2[*Row, error] {
	return func(yield func(*Row, error) bool) {
		r, err := c.query(ctx, query, args)
		if err != nil {
			yield(nil, err)
			return
		}
		cols := r.columns // Row keeps them to itself
		// Rows and their values are allocated in chunks that double up to
		// rowChunkMax rows: a one-row result costs what it did, a long one
		// two allocations per chunk instead of two per row. A Row kept by
		// the caller keeps its chunk alive.
		var (
			rowBuf []Row
			valBuf []driver.Value
			chunk  = 1
		)
		for {
			if len(rowBuf) == 0 {
				rowBuf = make([]Row, chunk)
				valBuf = make([]driver.Value, chunk*len(cols))
				chunk = min(chunk*2, rowChunkMax)
			}
			vals := valBuf[:len(cols):len(cols)]
			if err := r.Next(vals); err != nil {
				if !errors.Is(err, io.EOF) {
					_ = r.Close()
					yield(nil, err)
					return
				}
				break
			}
			row := &rowBuf[0]
			*row = Row{columns: cols, values: vals}
			rowBuf, valBuf = rowBuf[1:], valBuf[len(cols):]
			if !yield(row, nil) {
				_ = r.Close()
				return
			}
		}
		if err := r.Close(); err != nil {
			yield(nil, err)
		}
	}
}

// rowChunkMax is the most rows Conn.Query allocates at once.
const rowChunkMax = 32

// Transaction runs fn in a transaction on this connection, committing when
// fn returns nil and rolling back otherwise. Inside CheckoutInTransaction
// (or another Transaction) it uses a SAVEPOINT, so an error in fn undoes
// only fn's work.
func (c *Conn) Transaction(ctx context.Context, fn func(*Conn) error) error {
	if !c.inTX {
		return c.inTx(ctx, sql.TxOptions{}, fn)
	}
	c.savepoints++
	name := fmt.Sprintf("pgpurepy_sp_%d", c.savepoints)
	defer func() { c.savepoints-- }()
	if _, err := c.Execute(ctx, "SAVEPOINT "+name); err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			rctx, cancel := c.c.s.rollbackCtx()
			defer cancel()
			_, _ = c.c.execSimple(rctx, "ROLLBACK TO SAVEPOINT "+name)
		}
	}()
	if err := fn(c); err != nil {
		return err
	}
	if _, err := c.Execute(ctx, "RELEASE SAVEPOINT "+name); err != nil {
		return err
	}
	ok = true
	return nil
}

func (c *Conn) inTx(ctx context.Context, opts sql.TxOptions, fn func(*Conn) error) (err error) {
	t, err := c.c.BeginTx(ctx, driver.TxOptions{Isolation: driver.IsolationLevel(opts.Isolation), ReadOnly: opts.ReadOnly})
	if err != nil {
		return err
	}
	c.inTX = true
	defer func() { c.inTX = false }()
	committed := false
	defer func() {
		if !committed {
			if rbErr := t.Rollback(); rbErr != nil && err != nil {
				err = fmt.Errorf("%w (rollback: %w)", err, rbErr)
			}
		}
	}()
	if err := fn(c); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pgpurepy: transaction not committed: %w", err)
	}
	committed = true
	return t.(*tx).commit(ctx)
}

// namedArgs converts args in a buffer of the session, which runs one
// statement at a time; the caller clears it once the statement has encoded
// them. With a Tracer, which may keep the slice, they get their own.
func (c *Conn) namedArgs(args []any) []driver.NamedValue {
	if len(args) == 0 || c.c.s == nil || c.c.p.cfg.Tracer != nil {
		return namedArgs(args)
	}
	s := c.c.s
	s.namedBuf = appendNamed(s.namedBuf[:0], args)
	return s.namedBuf
}

func namedArgs(args []any) []driver.NamedValue {
	if len(args) == 0 {
		return nil
	}
	return appendNamed(make([]driver.NamedValue, 0, len(args)), args)
}

// appendNamed appends args to dst as positional arguments $1, $2, ...
func appendNamed[T any](dst []driver.NamedValue, args []T) []driver.NamedValue {
	for i, a := range args {
		dst = append(dst, driver.NamedValue{Ordinal: i + 1, Value: a})
	}
	return dst
}
