package pgpurepy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/jackc/pgx/v5/pgconn"

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
	c *Connector
}

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
func (c *Connector) Pool() *Pool { return &Pool{c: c} }

// AddConverter registers c for every connection of the pool: those open now
// apply it before their next statement, those opened later when they
// connect. The type is resolved by name (search_path applies) with one
// catalog query. A type that does not exist, or a converter that does not fit
// the type, gives an error and registers nothing.
func (x *Pool) AddConverter(ctx context.Context, c converters.Converter) error {
	return x.register(ctx, c, false)
}

// AddConverterWithArray is AddConverter that also registers the type's array
// type, so that T[] columns come back as []T and []T arguments are sent as
// arrays. It fails when the type has no array type.
func (x *Pool) AddConverterWithArray(ctx context.Context, c converters.Converter) error {
	return x.register(ctx, c, true)
}

// register resolves conv's type with one catalog query on one pooled
// connection, checks that the converter fits by applying it to a copy of
// that connection's types, and adds it to the registry: every connection
// applies it before its next statement, and every connection opened later
// at connect.
func (x *Pool) register(ctx context.Context, conv converters.Converter, withArray bool) error {
	return x.with(ctx, func(c *Conn) error {
		s := c.c.s
		if err := s.start(ctx); err != nil {
			return err
		}
		if err := s.sync(); err != nil {
			return err
		}
		info, err := s.typeInfo(ctx, conv.TypeName())
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) {
			return fmt.Errorf("pgpurepy: look up type %q: %w", conv.TypeName(), err)
		}
		if err != nil {
			return err
		}
		return x.c.sh.reg.add(&s.codecs, conv, info, withArray)
	})
}

// Execute runs query on the next free connection and returns the number of
// rows it affected. If ctx ends while the statement runs, the statement is
// cancelled on the server, the connection stays in the pool, and the error
// satisfies errors.Is(err, ctx.Err()).
//
// With multiplexing on, Execute, Fetch, FetchOne, FetchOneOrNone and Query
// multiplex the statements they can once every connection is busy (see the
// README's Multiplexing): such a statement's rows are read in full before
// the first is returned, and when ctx ends while it runs the call returns
// at once with an error satisfying errors.Is(err, ctx.Err()), but the
// statement is not cancelled: it runs to its end on the server and its
// result is dropped.
func (x *Pool) Execute(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := x.auto(ctx, func(c *Conn) error {
		var err error
		n, err = c.Execute(ctx, query, args...)
		return err
	})
	return n, err
}

// Fetch runs query on the next free connection and returns all its rows.
func (x *Pool) Fetch(ctx context.Context, query string, args ...any) ([]*Row, error) {
	var out []*Row
	err := x.auto(ctx, func(c *Conn) error {
		var err error
		out, err = c.Fetch(ctx, query, args...)
		return err
	})
	return out, err
}

// FetchOne returns the first row of query's result; see Conn.FetchOne.
func (x *Pool) FetchOne(ctx context.Context, query string, args ...any) (*Row, error) {
	var out *Row
	err := x.auto(ctx, func(c *Conn) error {
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
	err := x.auto(ctx, func(c *Conn) error {
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
		c, err := x.autoConn(ctx)
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
// behind: an open transaction is rolled back, session state (SET, LISTEN,
// temporary tables, session advisory locks) reset with one round trip when
// a statement may have left some, a broken connection replaced. It returns
// fn's error, or the error of waiting for a connection.
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

// auto runs fn on the Conn of autoConn, released when fn returns.
func (x *Pool) auto(ctx context.Context, fn func(*Conn) error) error {
	c, err := x.autoConn(ctx)
	if err != nil {
		return err
	}
	defer c.release()
	return fn(c)
}

// autoConn returns a Conn for the pool-level statement methods: for a
// context marked with PreferStandby, one holding a standby's session; with
// multiplexing on, one that binds a session only for a statement that
// cannot be multiplexed; otherwise a checked-out one.
func (x *Pool) autoConn(ctx context.Context) (*Conn, error) {
	if x.c.standby != nil && prefersStandby(ctx) {
		c := &Conn{c: conn{pool: x.c.pool, sh: x.c.sh, standby: x.c.standby, resetState: true}}
		if err := c.c.acquire(ctx, true); err != nil {
			return nil, err
		}
		return c, nil
	}
	if x.c.mux == nil {
		return x.checkout(ctx)
	}
	return &Conn{c: conn{pool: x.c.pool, sh: x.c.sh, mux: x.c.mux, resetState: true}}, nil
}

func (x *Pool) checkout(ctx context.Context) (*Conn, error) {
	c := &Conn{c: conn{pool: x.c.pool, sh: x.c.sh, resetState: true}}
	if err := c.c.bind(ctx); err != nil {
		return nil, err
	}
	return c, nil
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

// PgConn returns the connection's *pgconn.PgConn: the escape hatch to what
// the extension does not offer (pgconn's pipelines, raw protocol). It is
// valid inside the Checkout callback only, on its goroutine, and first waits
// (bounded by the cancel grace) for the connection to recover from a
// cancelled statement; it returns nil when the connection is lost.
//
// The driver keeps state about the connection that calls on the PgConn
// bypass: do not begin or end a transaction with it (use Transaction or
// CheckoutInTransaction), do not deallocate statements named pgpurepy_..., and
// finish what you started (read results to the end) before the next call
// on the Conn. A context that ends during a PgConn call cancels the
// statement on the server as any other, and the connection is kept; call
// PgConn again, or any method of the Conn, before using it further.
// Session state it leaves (SET, LISTEN) is reset when the Checkout ends.
func (c *Conn) PgConn() *pgconn.PgConn {
	s := c.c.s
	ctx, cancel := s.rollbackCtx()
	defer cancel()
	if s.start(ctx) != nil {
		return nil
	}
	s.dirty = true
	return s.pg
}

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
	cols := r.columnNames()
	vals := make([]driver.Value, len(cols))
	var row *Row
	switch err = r.Next(vals); {
	case err == nil:
		row = &Row{columns: cols, values: vals}
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

// resultRows are the rows of the extension's queries: streamed (rows) or,
// multiplexed, read in full (muxRows).
type resultRows interface {
	driver.Rows
	// columnNames returns the column names without copying them.
	columnNames() []string
}

// query starts query with args; the caller closes the rows.
func (c *Conn) query(ctx context.Context, query string, args []any) (resultRows, error) {
	nv := c.namedArgs(args)
	drows, err := c.c.QueryContext(ctx, query, nv)
	clear(nv) // encoded by now; do not keep the caller's values alive
	if err != nil {
		return nil, err
	}
	return drows.(resultRows), nil
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
		cols := r.columnNames() // Row keeps them to itself
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
	if len(args) == 0 || c.c.s == nil || c.c.sh.cfg.Tracer != nil {
		return namedArgs(args)
	}
	s := c.c.s
	s.namedBuf = appendNamed(s.namedBuf[:0], args)
	return s.namedBuf
}

// FetchStructs runs query on the pool and maps every row to a T with
// ScanStruct.
func FetchStructs[T any](ctx context.Context, x *Pool, query string, args ...any) ([]T, error) {
	var out []T
	for row, err := range x.Query(ctx, query, args...) {
		if err != nil {
			return nil, err
		}
		t, err := ScanStruct[T](row)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}
