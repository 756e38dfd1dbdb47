package pgpurepy

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy/internal/pool"
)

// Multiplexing (multiplexing=on) lets a few connections carry the
// autocommit statements of many callers. A caller that holds no session
// queues its statement; a carrier, a goroutine that holds one session of
// the pool, takes what is queued, sends it in one write with a Sync after
// each statement (each runs in an implicit transaction of its own, so an
// error in one is that caller's alone), reads the results in order and
// hands each caller its own, fully read and decoded. Carriers are started
// as work arrives, up to the pool's size, and give their session back when
// the queue is empty or when others wait for a connection, so the pool's
// counts stay exact and exclusive holders are served in line.
//
// Locks: mux.mu and each muxRequest's mu are leaves, never held during I/O
// or together. A carrier holds a request's mu while it encodes that
// request's arguments (the caller's driver.Valuer may run): only that
// caller, giving up, ever waits for it.

// Bounds of the multiplexer.
const (
	// muxBatchMax caps the statements of one round trip: a bigger batch
	// delays the first callers' results for the last ones.
	muxBatchMax = 64
	// muxRoutesMax bounds the texts whose route is remembered; texts
	// beyond it are read each time, and never counted slow.
	muxRoutesMax = 4096
	// muxTries bounds how often a statement is sent to a carrier: again
	// only when its first attempt ran nothing (the connection failed
	// before the write, or its cached description went stale).
	muxTries = 2
	// muxLargeRows is the most rows a multiplexed result may have before
	// its text runs on a connection of its own. A carrier decodes a whole
	// round trip's rows before it hands out the first result, and keeps
	// them alive until their callers read them; from about 20 rows of four
	// columns that costs more than the round trips it saves
	// (bench/NOTES.md).
	muxLargeRows = 16
	// muxLargeProbe: one in muxLargeProbe statements of a text routed
	// away for its large result is multiplexed again, to learn whether
	// its results got smaller; a text's rows often depend on its
	// arguments.
	muxLargeProbe = 64
)

// muxQuiet, when set, runs a statement on a connection of its own, as
// without multiplexing, while a connection is idle (see quiet). A multiplexer reads it when it is made (tests clear it).
var muxQuiet = true

// muxSlow is how long a statement may run in a batch before the
// statements queued behind it count as held up: a text that took longer
// runs on a connection of its own next time, and comes back once it ran
// faster there. A multiplexer reads it when it is made (tests change it).
var muxSlow = 5 * time.Millisecond

// mux is the multiplexer of one pool (see above). Its methods are safe
// for concurrent use.
type mux struct {
	pool *pool.Pool[*session]
	sh   *shared
	// slowAfter and whenQuiet are muxSlow and muxQuiet when the
	// multiplexer was made.
	slowAfter time.Duration
	whenQuiet bool

	// routes maps a SQL text to its *muxRoute; nRoutes counts them.
	routes  sync.Map
	nRoutes atomic.Int64

	mu sync.Mutex // protects following fields
	// queue holds the requests no carrier has taken, oldest first.
	queue []*muxRequest
	// carriers counts the running carriers (written under mu);
	// acquiring is set while one of them waits for its session.
	carriers  atomic.Int32
	acquiring bool
}

func newMux(sh *shared, p *pool.Pool[*session]) *mux {
	return &mux{pool: p, sh: sh, slowAfter: muxSlow, whenQuiet: muxQuiet}
}

// muxRoute is what the multiplexer remembers of one SQL text.
type muxRoute struct {
	ok bool // multiplexable(sql)
	// slow is set when the text last ran longer than mux.slowAfter.
	slow atomic.Bool
	// large is set when the text's last multiplexed result had more than
	// muxLargeRows rows; probe counts its routings since (see route).
	large atomic.Bool
	probe atomic.Uint32
}

// setFlag stores v in b unless b holds it already: most texts stay as they
// were, and a load keeps the carriers from writing one cache line over and
// over.
func setFlag(b *atomic.Bool, v bool) {
	if b.Load() != v {
		b.Store(v)
	}
}

// muxRequest is one caller's statement. Only its caller writes its fields
// before it is queued; after that, args is read (by the carrier, to
// encode them) only under mu while abandoned is not set, because the
// caller that gives up returns to code that may change the values.
type muxRequest struct {
	ctx  context.Context
	sql  string
	opts queryOptions
	// done receives the result once; its buffer of one lets a carrier
	// deliver to a caller that gave up without blocking.
	done chan muxResult
	// tries counts the carriers that took the request; carriers only.
	tries int

	mu        sync.Mutex // protects following fields
	args      []driver.NamedValue
	abandoned bool
}

// muxResult is the outcome of one multiplexed statement, owned by its
// caller: rows fully read and decoded, and what ColumnType* report.
type muxResult struct {
	tag    pgconn.CommandTag
	rows   []*Row
	cols   []string
	fields []pgconn.FieldDescription
	types  []colType
	err    error
}

// route says whether query, with options o, is multiplexed, runs on the
// conn's own session because it ran slowly before (routeSlow, counted), or
// runs there because its last multiplexed result was large (counted),
// because it must or because the pool is quiet (routeOwn).
func (m *mux) route(query string, o *queryOptions) route {
	if o.simple {
		return routeOwn
	}
	r := m.lookup(query)
	switch {
	case r == nil || !r.ok:
		return routeOwn
	case r.slow.Load():
		m.sh.stats.muxSlowExclusive.Add(1)
		return routeSlow
	case r.large.Load() && r.probe.Add(1)%muxLargeProbe != 0:
		m.sh.stats.muxLargeExclusive.Add(1)
		return routeOwn
	case m.quiet():
		return routeOwn
	}
	return routeMux
}

// quiet reports whether a statement may as well run on a connection of its
// own: a connection is idle, so it would not wait for one. Handing a
// statement to a carrier costs two goroutine hand-offs and a copy of its
// rows, which a batch of one or two statements does not earn back: at one
// caller at a time it halved the throughput of a point select, and with
// the carriers taking every statement while one ran, 8 callers on the
// default pool of 5 got 0.75× of multiplexing off. Only the statements that
// would wait for a connection are queued, so multiplexing starts once the
// connections are all busy (bench/NOTES.md).
func (m *mux) quiet() bool {
	return m.whenQuiet && m.pool.Idle() > 0
}

// lookup returns query's route, remembering it while there is room; nil
// means query is not multiplexable and not remembered.
func (m *mux) lookup(query string) *muxRoute {
	if r, ok := m.routes.Load(query); ok {
		return r.(*muxRoute)
	}
	r := &muxRoute{ok: multiplexable(query)}
	if m.nRoutes.Load() >= muxRoutesMax {
		if !r.ok {
			return nil
		}
		return r
	}
	if got, loaded := m.routes.LoadOrStore(query, r); loaded {
		return got.(*muxRoute)
	}
	m.nRoutes.Add(1)
	return r
}

// ran records how long multiplexed query took and how many rows it
// returned.
func (m *mux) ran(query string, took time.Duration, rows int) {
	if r, ok := m.routes.Load(query); ok {
		r := r.(*muxRoute)
		setFlag(&r.slow, took > m.slowAfter)
		large := rows > muxLargeRows
		if large && !r.large.Load() {
			// The next probe comes after muxLargeProbe-1 routings away.
			r.probe.Store(0)
		}
		setFlag(&r.large, large)
	}
}

// ranAlone records how long query took on a connection of its own, where
// route sent it because it was slow: a text that ran fast again goes back
// to the multiplexer.
func (m *mux) ranAlone(query string, took time.Duration) {
	if r, ok := m.routes.Load(query); ok {
		setFlag(&r.(*muxRoute).slow, took > m.slowAfter)
	}
}

// exec runs query through the multiplexer and returns its command tag.
func (m *mux) exec(ctx context.Context, query string, args []driver.NamedValue, o *queryOptions) (pgconn.CommandTag, error) {
	res, err := m.run(ctx, query, args, o)
	return res.tag, err
}

// query runs query through the multiplexer and returns its rows, read in
// full, and its command tag.
func (m *mux) query(ctx context.Context, query string, args []driver.NamedValue, o *queryOptions) (driver.Rows, pgconn.CommandTag, error) {
	res, err := m.run(ctx, query, args, o)
	if err != nil {
		return nil, res.tag, err
	}
	return &muxRows{res: res, nulls: m.sh.nulls}, res.tag, nil
}

// run queues one statement and waits for its result, bounded by ctx. When
// ctx ends first, run returns at once with an error wrapping ctx.Err(): a
// statement still queued is never sent, and one already sent runs on the
// server to its end (a carrier sends no cancel request, which could reach
// a neighbour's statement) and its result is dropped.
func (m *mux) run(ctx context.Context, query string, args []driver.NamedValue, o *queryOptions) (muxResult, error) {
	if err := ctx.Err(); err != nil {
		return muxResult{}, fmt.Errorf("pgpurepy: %w", err)
	}
	r := &muxRequest{ctx: ctx, sql: query, opts: *o, args: args, done: make(chan muxResult, 1)}
	m.enqueue(r)
	select {
	case res := <-r.done:
		return res, res.err
	case <-ctx.Done():
	}
	r.mu.Lock()
	r.abandoned = true
	r.mu.Unlock()
	select {
	case res := <-r.done:
		// It ended as ctx did: the result counts.
		return res, res.err
	default:
	}
	return muxResult{}, fmt.Errorf("pgpurepy: %w", ctx.Err())
}

// enqueue queues rs, in front of what waits when they are retries, and
// starts a carrier when none is on its way to a session and the pool has
// room for one more.
func (m *mux) enqueue(rs ...*muxRequest) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(rs) == 1 && rs[0].tries == 0 {
		m.queue = append(m.queue, rs[0])
	} else {
		m.queue = append(rs[:len(rs):len(rs)], m.queue...)
	}
	m.startLocked()
}

// startLocked starts a carrier if work waits, none is acquiring a session
// and fewer than the pool's size run.
func (m *mux) startLocked() {
	if len(m.queue) == 0 || m.acquiring || int(m.carriers.Load()) >= m.sh.cfg.ConnectionCount {
		return
	}
	m.carriers.Add(1)
	m.acquiring = true
	go m.carry()
}

// take removes up to muxBatchMax requests from the queue. With none left
// it ends the carrier's turn: it counts the carrier out and returns nil.
func (m *mux) take() []*muxRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := min(len(m.queue), muxBatchMax)
	if n == 0 {
		m.carriers.Add(-1)
		return nil
	}
	batch := make([]*muxRequest, n)
	copy(batch, m.queue)
	clear(m.queue[:n])
	m.queue = m.queue[n:]
	return batch
}

// leave counts a carrier out that stops with work queued, and starts
// another for that work, which waits in line for a session.
func (m *mux) leave() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.carriers.Add(-1)
	m.startLocked()
}

// others reports whether callers other than a carrier wait for a session.
func (m *mux) others() bool {
	waiting := m.pool.Waiting()
	if waiting == 0 {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.acquiring {
		waiting--
	}
	return waiting > 0
}

// carry is a carrier: it checks a session out of the pool, as any holder
// does, and runs rounds until the queue is empty, the session fails, or
// others wait for a session. The session is its alone while it runs; it
// goes back to the pool (or is replaced when broken) when the carrier
// stops.
func (m *mux) carry() {
	c := &conn{pool: m.pool, sh: m.sh}
	err := c.bind(m.sh.life)
	m.mu.Lock()
	m.acquiring = false
	if err != nil {
		// No session for anyone now (the pool closed, or the server
		// cannot be reached): the queued callers get the error, as
		// callers waiting in the pool's line do.
		failed := m.queue
		m.queue = nil
		m.carriers.Add(-1)
		m.mu.Unlock()
		for _, r := range failed {
			r.done <- muxResult{err: err}
		}
		return
	}
	m.mu.Unlock()
	defer c.unbind()
	// A carrier's statements are never cancelled: a cancel request stops
	// whatever statement runs on the session, which may be a neighbour's.
	ctx := context.WithoutCancel(m.sh.life)
	for {
		batch := m.take()
		if batch == nil {
			return
		}
		if retry := m.round(ctx, c, batch); len(retry) > 0 {
			m.enqueue(retry...)
		}
		if !c.s.healthy() || m.others() {
			m.leave()
			return
		}
	}
}

// errAbandoned marks a request whose caller gave up before it was sent.
var errAbandoned = errors.New("pgpurepy: abandoned")

// round sends batch on c's session in one write and delivers each result.
// It returns the requests to send again: those that ran nothing because the
// connection failed before they were written, or whose cached description
// went stale, once.
func (m *mux) round(ctx context.Context, c *conn, batch []*muxRequest) (retry []*muxRequest) {
	s := c.s
	stmts := make([]batchStmt, len(batch))
	for i, r := range batch {
		r.tries++
		stmts[i] = batchStmt{sql: r.sql, args: r.args, opts: r.opts, multiplexed: true}
	}
	if err := s.start(ctx); err != nil {
		return m.again(batch, nil, err)
	}
	if err := s.sync(); err != nil {
		for _, r := range batch {
			r.done <- muxResult{err: err}
		}
		return nil
	}
	if _, err := s.describeBatch(ctx, stmts); err != nil {
		return m.again(batch, nil, s.finish(ctx, err))
	}

	// Encode each statement's arguments while its caller still waits; a
	// statement that fails to be described or encoded fails alone.
	enc := newBatchEncoder(stmts)
	send := make([]batchStmt, 0, len(stmts))
	sent := make([]*muxRequest, 0, len(stmts))
	for i, r := range batch {
		st := &stmts[i]
		if st.err == nil {
			r.mu.Lock()
			if r.abandoned || r.ctx.Err() != nil {
				r.abandoned, st.err = true, errAbandoned
			} else {
				st.err = enc.encode(s, st)
			}
			r.mu.Unlock()
		}
		switch {
		case errors.Is(st.err, errAbandoned):
			// Its caller returns its context's error.
			continue
		case st.err != nil:
			r.done <- muxResult{err: st.err}
			continue
		}
		send = append(send, *st)
		sent = append(sent, r)
	}
	if len(send) == 0 {
		return nil
	}

	began := time.Now()
	c.execBatch(ctx, send, false)
	_ = s.settleBatch(ctx, send)
	m.sh.stats.muxRoundTrips.Add(1)
	m.sh.stats.muxStatements.Add(uint64(len(send)))
	prev := began
	for k, r := range sent {
		st := &send[k]
		if !st.lost {
			// The server runs the statements one after another: each
			// one's time is from the end of the result before it.
			m.ran(st.sql, st.ended.Sub(prev), len(st.rows))
			prev = st.ended
		}
		switch {
		case r.tries < muxTries && st.lost && pgconn.SafeToRetry(st.err),
			r.tries < muxTries && !st.lost && isStaleStatement(st.err):
			retry = append(retry, r)
		case st.lost:
			r.done <- muxResult{err: fmt.Errorf("pgpurepy: multiplexed connection failed with the statement in flight, its outcome is unknown: %w", st.err)}
		default:
			r.done <- muxResult{tag: st.tag, rows: st.rows, cols: st.cols, fields: st.fields, types: st.types, err: st.err}
		}
	}
	return retry
}

// again returns the requests of batch that may be sent again after the
// connection failed with err before any was written; the others get err.
func (m *mux) again(batch, retry []*muxRequest, err error) []*muxRequest {
	for _, r := range batch {
		if r.tries < muxTries {
			retry = append(retry, r)
		} else {
			r.done <- muxResult{err: err}
		}
	}
	return retry
}

// muxRows are the rows of a multiplexed query, read in full by its
// carrier: Next hands out values the caller owns, and the ColumnType
// methods answer from what the carrier described, as streamed rows do.
type muxRows struct {
	res   muxResult
	nulls *nullability
	next  int
}

var (
	_ driver.Rows                           = (*muxRows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*muxRows)(nil)
	_ driver.RowsColumnTypeScanType         = (*muxRows)(nil)
	_ driver.RowsColumnTypeLength           = (*muxRows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*muxRows)(nil)
	_ driver.RowsColumnTypeNullable         = (*muxRows)(nil)
)

// Columns returns the column names in a slice of the caller's own.
func (r *muxRows) Columns() []string { return append([]string(nil), r.res.cols...) }

func (r *muxRows) columnNames() []string { return r.res.cols }

// Next copies the next row's values into dest; they are the caller's.
func (r *muxRows) Next(dest []driver.Value) error {
	if r.next >= len(r.res.rows) {
		return io.EOF
	}
	copy(dest, r.res.rows[r.next].values)
	r.next++
	return nil
}

// Close lets go of the rows. The statement ended before the rows were
// returned, so it never fails.
func (r *muxRows) Close() error {
	r.res.rows, r.next = nil, 0
	return nil
}

// ColumnTypeDatabaseTypeName is rows.ColumnTypeDatabaseTypeName.
func (r *muxRows) ColumnTypeDatabaseTypeName(i int) string { return r.res.types[i].name }

// ColumnTypeScanType is rows.ColumnTypeScanType.
func (r *muxRows) ColumnTypeScanType(i int) reflect.Type { return r.res.types[i].scan }

// ColumnTypeLength is rows.ColumnTypeLength.
func (r *muxRows) ColumnTypeLength(i int) (int64, bool) { return columnLength(r.res.fields[i]) }

// ColumnTypePrecisionScale is rows.ColumnTypePrecisionScale.
func (r *muxRows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	return columnPrecisionScale(r.res.fields[i])
}

// ColumnTypeNullable is rows.ColumnTypeNullable.
func (r *muxRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	return r.nulls.lookup(r.res.fields[i])
}
