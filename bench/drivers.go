package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/lib/pq"

	"github.com/pgpurepy/pgpurepy"
)

// The statements every client runs. They are the same text for every driver,
// so that drivers that cache prepared statements by text do so.
const (
	qPoint    = "SELECT $1::int4 + 1"
	qRows     = "SELECT id, t, ts, n FROM bench_rows"
	qInsert   = "INSERT INTO bench_insert (a, b) VALUES ($1, $2)"
	qTxSelect = "SELECT v FROM bench_tx WHERE id = $1"
	qTxUpdate = "UPDATE bench_tx SET v = v + 1 WHERE id = $1"
	qSleep    = "SELECT pg_sleep(0.05)"
)

// txRows is the number of rows of bench_tx; the transaction workload picks
// one at random so that workers rarely wait for each other's row locks.
const txRows = 10000

// client is one driver configuration under test. Every method is safe for
// concurrent use and must not allocate beyond what the driver itself does.
type client interface {
	point(ctx context.Context, x int) (int, error)
	// rows100 scans every row of qRows and returns how many it scanned.
	rows100(ctx context.Context) (int, error)
	insert(ctx context.Context, a int, b string) error
	tx(ctx context.Context, id int) error
	sleep(ctx context.Context) error
	// opened is the number of server connections opened so far.
	opened() uint64
	// poolCounters returns pgpurepy's cancel requests sent and checkouts
	// that timed out while waiting, and false for the other drivers.
	poolCounters() (cancels, acquireTimeouts uint64, ok bool)
	// settle waits, bounded by ctx, until the client's own pool has
	// reached its steady size; pgpurepy fills its pool in the background.
	settle(ctx context.Context)
	close() error
}

// driverSpec names a client and says how to open it for a concurrency.
type driverSpec struct {
	name string
	open func(dsn string, conc int) (client, error)
}

// pgbenchName is the pseudo-driver measured by running pgbench.
const pgbenchName = "pgbench"

// refDriver is the driver every ratio is taken against.
const refDriver = "pgx-stdlib-tuned"

// muxDriver is pgpurepy with multiplexing=on.
const muxDriver = "pgpurepy-mux"

// driverSpecs lists the clients in the order they run within a turn and
// appear in the tables.
var driverSpecs = []driverSpec{
	{"pgpurepy-default", openPgpurepyDefault},
	{"pgpurepy-opendb", openPgpurepyOpenDB},
	{muxDriver, openPgpurepyMux},
	{"pgpurepy-tuned", openPgpurepyTuned},
	{"pgpurepy-ext", openPgpurepyExt},
	{"pgpurepy-ext-tuned", openPgpurepyExtTuned},
	{"pgx-stdlib-default", func(dsn string, conc int) (client, error) { return openPgxStdlib(dsn, 0) }},
	{"pgx-stdlib-tuned", func(dsn string, conc int) (client, error) { return openPgxStdlib(dsn, conc) }},
	{"pq-default", func(dsn string, conc int) (client, error) { return openPq(dsn, 0) }},
	{"pq-tuned", func(dsn string, conc int) (client, error) { return openPq(dsn, conc) }},
	{"pgxpool", openPgxpool},
}

// allDriverNames is every driver name the -drivers flag accepts, in table
// order.
func allDriverNames() []string {
	names := make([]string, 0, len(driverSpecs)+1)
	for _, d := range driverSpecs {
		names = append(names, d.name)
	}
	return append(names, pgbenchName)
}

// --- database/sql -----------------------------------------------------------

// rowScanner is what *sql.Rows and pgx.Rows share.
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanRows100 scans every row of qRows fully and counts them.
func scanRows100(rows rowScanner) (int, error) {
	var (
		id  int64
		t   string
		ts  time.Time
		num string
		cnt int
	)
	for rows.Next() {
		if err := rows.Scan(&id, &t, &ts, &num); err != nil {
			return cnt, err
		}
		cnt++
	}
	return cnt, rows.Err()
}

// sqlClient runs the workloads through database/sql.
type sqlClient struct {
	db      *sql.DB
	openedF func() uint64
	x       *pgpurepy.Pool // pgpurepy's pool under db; nil for the others
	// warm is how many connections settle opens ahead of the timed part
	// for a tuned peer (its SetMaxOpenConns), which opens them only on
	// demand; 0 with database/sql's defaults, which keep two at most.
	warm int
}

func (c *sqlClient) point(ctx context.Context, x int) (int, error) {
	var n int
	err := c.db.QueryRowContext(ctx, qPoint, x).Scan(&n)
	return n, err
}

func (c *sqlClient) rows100(ctx context.Context) (int, error) {
	rows, err := c.db.QueryContext(ctx, qRows)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	return scanRows100(rows)
}

func (c *sqlClient) insert(ctx context.Context, a int, b string) error {
	_, err := c.db.ExecContext(ctx, qInsert, a, b)
	return err
}

func (c *sqlClient) tx(ctx context.Context, id int) error {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	var v int64
	if err := tx.QueryRowContext(ctx, qTxSelect, id).Scan(&v); err != nil {
		_ = tx.Rollback()
		return err
	}
	if _, err := tx.ExecContext(ctx, qTxUpdate, id); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (c *sqlClient) sleep(ctx context.Context) error {
	_, err := c.db.ExecContext(ctx, qSleep)
	return err
}

func (c *sqlClient) opened() uint64 { return c.openedF() }
func (c *sqlClient) close() error   { return c.db.Close() }

func (c *sqlClient) poolCounters() (uint64, uint64, bool) { return pgpurepyCounters(c.x) }

// pgpurepyCounters returns x's cancel and acquire-timeout counters; false
// when x is nil.
func pgpurepyCounters(x *pgpurepy.Pool) (uint64, uint64, bool) {
	if x == nil {
		return 0, 0, false
	}
	st := x.Stats()
	return st.CancelsSent, st.CanceledAcquires, true
}

func (c *sqlClient) settle(ctx context.Context) {
	if c.x != nil {
		settlePool(ctx, c.x)
		return
	}
	openAhead(ctx, c.warm, func(ctx context.Context) (func(), error) {
		cn, err := c.db.Conn(ctx)
		if err != nil {
			return nil, err
		}
		return func() { _ = cn.Close() }, nil
	})
}

// openAhead checks n connections out together and gives them back, so that
// a pool that dials on demand holds n when the timed part starts, as
// pgpurepy's pools do after settlePool: a warm-up at c=64 can end before a
// pool has dialled them all, and the dialling would then be measured.
func openAhead(ctx context.Context, n int, checkout func(context.Context) (release func(), err error)) {
	releases := make([]func(), 0, n)
	for range n {
		release, err := checkout(ctx)
		if err != nil {
			break
		}
		releases = append(releases, release)
	}
	for _, release := range releases {
		release()
	}
}

// settlePool waits until x holds all its connections and dials none. A
// pool dials nothing before its first use, so one statement starts it.
func settlePool(ctx context.Context, x *pgpurepy.Pool) {
	if x.Stats().Acquires == 0 {
		_, _ = x.Execute(ctx, "SELECT 1")
	}
	for ctx.Err() == nil {
		st := x.Stats()
		if st.Opening == 0 && st.OpenConnections >= st.MaxConnections {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countingConnector counts the connections a driver.Connector opens. The
// connections themselves are not wrapped, so the driver's optional
// interfaces all stay visible to database/sql.
type countingConnector struct {
	driver.Connector
	n atomic.Uint64
}

func (c *countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	cn, err := c.Connector.Connect(ctx)
	if err == nil {
		c.n.Add(1)
	}
	return cn, err
}

// tune applies the "tuned" database/sql settings; conc 0 keeps the
// defaults (MaxIdleConns 2, MaxOpenConns unlimited).
func tune(db *sql.DB, conc int) {
	if conc > 0 {
		db.SetMaxOpenConns(conc)
		db.SetMaxIdleConns(conc)
	}
}

func openPgxStdlib(dsn string, conc int) (client, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cc := &countingConnector{Connector: stdlib.GetConnector(*cfg)}
	db := sql.OpenDB(cc)
	tune(db, conc)
	return &sqlClient{db: db, openedF: cc.n.Load, warm: conc}, nil
}

func openPq(dsn string, conc int) (client, error) {
	pc, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	cc := &countingConnector{Connector: pc}
	db := sql.OpenDB(cc)
	tune(db, conc)
	return &sqlClient{db: db, openedF: cc.n.Load, warm: conc}, nil
}

// pgpurepyOpened counts through the pool's own statistics: database/sql's
// Connect calls are checkouts from the pool, not server connections.
func pgpurepyClient(db *sql.DB) (client, error) {
	x, err := pgpurepy.Ext(db)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &sqlClient{db: db, x: x, openedF: func() uint64 { return x.Stats().ConnectionsOpened }}, nil
}

// openPgpurepyDefault is sql.Open("pgpurepy", dsn) with database/sql's
// default settings and the pool's default size.
func openPgpurepyDefault(dsn string, _ int) (client, error) {
	db, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		return nil, err
	}
	return pgpurepyClient(db)
}

// openPgpurepyOpenDB is pgpurepy.OpenDB(dsn): sql.OpenDB on a Connector,
// with database/sql's idle list sized to the pool.
func openPgpurepyOpenDB(dsn string, _ int) (client, error) {
	db, err := pgpurepy.OpenDB(dsn)
	if err != nil {
		return nil, err
	}
	return pgpurepyClient(db)
}

// openPgpurepyMux is pgpurepy.OpenDB(dsn) with multiplexing=on: the
// default pool's few connections carry every caller's statements, several
// per round trip.
func openPgpurepyMux(dsn string, _ int) (client, error) {
	mdsn, err := withKey(dsn, "multiplexing", "on")
	if err != nil {
		return nil, err
	}
	return openPgpurepyOpenDB(mdsn, 0)
}

// openPgpurepyTuned is sql.Open("pgpurepy", dsn) with connection_count =
// conc in the DSN: as many server connections as the tuned peers get
// (SetMaxOpenConns(conc) for pgx stdlib and lib/pq, MaxConns for pgxpool).
// database/sql's own settings stay at their defaults: its parked
// connections hold no server session.
func openPgpurepyTuned(dsn string, conc int) (client, error) {
	tdsn, err := withConnectionCount(dsn, conc)
	if err != nil {
		return nil, err
	}
	return openPgpurepyDefault(tdsn, conc)
}

// withConnectionCount returns dsn with pgpurepy's connection_count key set
// to n (at least 1), for URL and keyword/value DSNs alike.
func withConnectionCount(dsn string, n int) (string, error) {
	return withKey(dsn, "connection_count", strconv.Itoa(max(n, 1)))
}

// withKey returns dsn with key set to value, for URL and keyword/value DSNs
// alike.
func withKey(dsn, key, value string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("dsn: %w", err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	// Keyword/value form: a later key wins over an earlier one.
	return strings.TrimSpace(dsn) + " " + key + "=" + value, nil
}

// --- pgpurepy extension ------------------------------------------------------

// extClient runs the workloads through pgpurepy's own API.
type extClient struct {
	c *pgpurepy.Connector
	x *pgpurepy.Pool
}

func openPgpurepyExt(dsn string, _ int) (client, error) {
	c, err := pgpurepy.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return &extClient{c: c, x: c.Pool()}, nil
}

// openPgpurepyExtTuned is the extension on a pool of conc connections
// (connection_count in the DSN), like pgpurepy-tuned.
func openPgpurepyExtTuned(dsn string, conc int) (client, error) {
	tdsn, err := withConnectionCount(dsn, conc)
	if err != nil {
		return nil, err
	}
	return openPgpurepyExt(tdsn, conc)
}

func (c *extClient) point(ctx context.Context, x int) (int, error) {
	row, err := c.x.FetchOne(ctx, qPoint, x)
	if err != nil {
		return 0, err
	}
	var n int
	err = row.Scan(&n)
	return n, err
}

func (c *extClient) rows100(ctx context.Context) (int, error) {
	var (
		id  int64
		t   string
		ts  time.Time
		num string
		cnt int
	)
	for row, err := range c.x.Query(ctx, qRows) {
		if err != nil {
			return cnt, err
		}
		if err := row.Scan(&id, &t, &ts, &num); err != nil {
			return cnt, err
		}
		cnt++
	}
	return cnt, nil
}

func (c *extClient) insert(ctx context.Context, a int, b string) error {
	_, err := c.x.Execute(ctx, qInsert, a, b)
	return err
}

func (c *extClient) tx(ctx context.Context, id int) error {
	return c.x.CheckoutInTransaction(ctx, func(cn *pgpurepy.Conn) error {
		row, err := cn.FetchOne(ctx, qTxSelect, id)
		if err != nil {
			return err
		}
		var v int64
		if err := row.Scan(&v); err != nil {
			return err
		}
		_, err = cn.Execute(ctx, qTxUpdate, id)
		return err
	})
}

func (c *extClient) sleep(ctx context.Context) error {
	_, err := c.x.Execute(ctx, qSleep)
	return err
}

func (c *extClient) opened() uint64                       { return c.x.Stats().ConnectionsOpened }
func (c *extClient) settle(ctx context.Context)           { settlePool(ctx, c.x) }
func (c *extClient) poolCounters() (uint64, uint64, bool) { return pgpurepyCounters(c.x) }
func (c *extClient) close() error                         { return c.c.Close() }

// --- pgxpool -----------------------------------------------------------------

// pgxpoolClient runs the workloads through pgx's native pool.
type pgxpoolClient struct {
	p *pgxpool.Pool
}

func openPgxpool(dsn string, conc int) (client, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(max(conc, 1))
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	return &pgxpoolClient{p: p}, nil
}

func (c *pgxpoolClient) point(ctx context.Context, x int) (int, error) {
	var n int
	err := c.p.QueryRow(ctx, qPoint, x).Scan(&n)
	return n, err
}

func (c *pgxpoolClient) rows100(ctx context.Context) (int, error) {
	rows, err := c.p.Query(ctx, qRows)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	return scanRows100(rows)
}

func (c *pgxpoolClient) insert(ctx context.Context, a int, b string) error {
	_, err := c.p.Exec(ctx, qInsert, a, b)
	return err
}

func (c *pgxpoolClient) tx(ctx context.Context, id int) error {
	return pgx.BeginFunc(ctx, c.p, func(tx pgx.Tx) error {
		var v int64
		if err := tx.QueryRow(ctx, qTxSelect, id).Scan(&v); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, qTxUpdate, id)
		return err
	})
}

func (c *pgxpoolClient) sleep(ctx context.Context) error {
	_, err := c.p.Exec(ctx, qSleep)
	return err
}

func (c *pgxpoolClient) opened() uint64                       { return uint64(c.p.Stat().NewConnsCount()) }
func (c *pgxpoolClient) poolCounters() (uint64, uint64, bool) { return 0, 0, false }
func (c *pgxpoolClient) close() error                         { c.p.Close(); return nil }

func (c *pgxpoolClient) settle(ctx context.Context) {
	openAhead(ctx, int(c.p.Config().MaxConns), func(ctx context.Context) (func(), error) {
		cn, err := c.p.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		return cn.Release, nil
	})
}

// findDriver returns the spec called name.
func findDriver(name string) (driverSpec, error) {
	for _, d := range driverSpecs {
		if d.name == name {
			return d, nil
		}
	}
	return driverSpec{}, fmt.Errorf("unknown driver %q", name)
}
