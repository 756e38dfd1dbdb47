package pgpurepy_test

// Helpers that several of the package's test files use: the test database,
// cancellation checks, the extension's gauges, fault proxies and servers of a
// test's own, traffic and secrets. A helper that one file uses stays in that
// file.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// openDB opens a *sql.DB on a fresh database of the package's server and
// closes it when the test ends. extra is appended to the DSN's query.
func openDB(t testing.TB, extra ...string) (*sql.DB, string) {
	t.Helper()
	dsn := sqltest.DB(t)
	for _, e := range extra {
		dsn += "&" + e
	}
	db, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, dsn
}

// mustExec runs a statement and fails the test on error.
func mustExec(t testing.TB, db interface {
	Exec(string, ...any) (sql.Result, error)
}, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// ext returns the extension of db, failing the test if there is none.
func ext(t testing.TB, db *sql.DB) *pgpurepy.Pool {
	t.Helper()
	x, err := pgpurepy.Ext(db)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// backendPID returns the server process id of the session behind q.
func backendPID(t testing.TB, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) int {
	t.Helper()
	var pid int
	if err := q.QueryRowContext(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// pgCode returns the SQLSTATE of a server error, or "".
func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// dbsqlCheckWorks runs a statement with each protocol.
func dbsqlCheckWorks(t testing.TB, db interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), "SELECT $1::int4 + 1", 1).Scan(&n); err != nil || n != 2 {
		t.Fatalf("after the error, with args: %d, %v", n, err)
	}
	if err := db.QueryRowContext(context.Background(), "SELECT 3").Scan(&n); err != nil || n != 3 {
		t.Fatalf("after the error, literal: %d, %v", n, err)
	}
}

// waitNoActive polls pg_stat_activity until no backend runs a statement
// containing marker; the bound is generous because it is not a timing test.
func waitNoActive(t testing.TB, db *sql.DB, marker string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`, marker).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("statement %q still active on the server", marker)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertCtxErr fails the test unless err wraps want, a context's error.
func assertCtxErr(t testing.TB, err error, want error) {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error")
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %v does not wrap %v", err, want)
	}
}

// assertCancelKeepsConnection cancels a long statement on db, a pool of one
// connection, by its deadline, and checks that the statement stopped on the
// server and the same connection serves the next one, with the cancel
// counted and no connection opened. marker names the statement.
func assertCancelKeepsConnection(t testing.TB, db *sql.DB, x *pgpurepy.Pool, marker string) {
	t.Helper()
	pid := backendPID(t, db)
	before := x.Stats()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := db.ExecContext(ctx, "SELECT pg_sleep(30) /* "+marker+" */")
	assertCtxErr(t, err, context.DeadlineExceeded)

	waitNoActive(t, db, marker)
	if got := backendPID(t, db); got != pid {
		t.Fatalf("backend pid changed from %d to %d: the connection was replaced", pid, got)
	}
	after := x.Stats()
	if after.ConnectionsOpened != before.ConnectionsOpened {
		t.Fatalf("pool opened %d new connections", after.ConnectionsOpened-before.ConnectionsOpened)
	}
	if after.CancelsSent <= before.CancelsSent || after.CancelsKept <= before.CancelsKept {
		t.Fatalf("cancel not counted: before %+v after %+v", before, after)
	}
}

// extBound is how long a test waits for something that should happen at
// once; it is generous so that a slow machine does not fail the test.
const extBound = 20 * time.Second

// extWaitGauges polls the pool until its idle and waiting gauges have the
// given values, and fails the test with the last snapshot otherwise.
func extWaitGauges(t testing.TB, x *pgpurepy.Pool, idle, waiting int) pgpurepy.Stats {
	t.Helper()
	deadline := time.Now().Add(extBound)
	for {
		s := x.Stats()
		if s.IdleConnections == idle && s.WaitingTasks == waiting {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for idle=%d waiting=%d; last stats: %+v", idle, waiting, s)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// extWarm makes the pool open its first connection and waits until it has
// filled itself to MaxConnections in the background.
func extWarm(t testing.TB, x *pgpurepy.Pool) {
	t.Helper()
	if _, err := x.Execute(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	extWaitGauges(t, x, x.MaxConnections(), 0)
}

// viaProxy returns dsn, a URL, with the proxy's address as its host.
func viaProxy(t testing.TB, dsn string, px *sqltest.Proxy) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = px.Addr()
	return u.String()
}

// resOpen opens a *sql.DB on dsn and returns it with its extension. It is
// closed when the test ends (tests with goleak close it earlier too).
func resOpen(t testing.TB, dsn string) (*sql.DB, *pgpurepy.Pool) {
	t.Helper()
	db, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, ext(t, db)
}

// resWarm runs one statement and waits until the pool is at full size with
// every connection idle.
func resWarm(t testing.TB, db *sql.DB, x *pgpurepy.Pool) {
	t.Helper()
	if err := db.PingContext(context.Background()); err != nil {
		t.Fatalf("warm up: %v", err)
	}
	resWaitFull(t, x)
	resPoll(t, "every connection idle", func() (bool, string) {
		s := x.Stats()
		return s.IdleConnections == s.MaxConnections, fmt.Sprintf("%+v", s)
	})
}

// resWaitFull waits until the pool holds MaxConnections open connections.
func resWaitFull(t testing.TB, x *pgpurepy.Pool) {
	t.Helper()
	resPoll(t, "pool back to full size", func() (bool, string) {
		s := x.Stats()
		return s.OpenConnections == s.MaxConnections && s.Deficit == 0, fmt.Sprintf("%+v", s)
	})
}

// resPollBound bounds every wait for the pool to settle.
const resPollBound = 30 * time.Second

// resPoll polls cond until it holds, failing t after resPollBound with the
// last state cond described.
func resPoll(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(resPollBound)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v; last state: %s", what, resPollBound, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// resStartServer starts a server of the test's own, for scenarios that stop
// or restart it, and closes it when the test ends. It skips when the server
// is not started from local binaries (PGPUREPY_TEST_DSN, Docker).
func resStartServer(t testing.TB, opts sqltest.Options) *sqltest.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := sqltest.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	if srv.Dir() == "" {
		t.Skip("needs a server started from local binaries (it is stopped and restarted)")
	}
	return srv
}

// resDBName returns the database a DSN names.
func resDBName(t testing.TB, dsn string) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

// resProxy starts a fault proxy in front of the shared server. The caller
// closes it (before goleak looks); it is also closed when the test ends.
func resProxy(t testing.TB) *sqltest.Proxy {
	t.Helper()
	srv := sqltest.Shared(t)
	px, err := sqltest.NewProxy(net.JoinHostPort(srv.Host(), strconv.Itoa(srv.Port())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	return px
}

// resOpTimeout bounds one operation of the traffic, so that a hang shows up
// as a failure instead of stalling the test.
const resOpTimeout = 30 * time.Second

// resOp is one operation of traffic; i makes each result checkable.
type resOp func(ctx context.Context, i int) error

// resSQLOp is traffic through database/sql: extended protocol with an
// argument, simple protocol without one, and a multi-row result.
func resSQLOp(db *sql.DB) resOp {
	return func(ctx context.Context, i int) error {
		switch i % 3 {
		case 0:
			var got int
			if err := db.QueryRowContext(ctx, "SELECT $1::int", i).Scan(&got); err != nil {
				return err
			}
			if got != i {
				return fmt.Errorf("SELECT $1::int with %d returned %d", i, got)
			}
		case 1:
			if _, err := db.ExecContext(ctx, "SELECT 1"); err != nil {
				return err
			}
		default:
			want := 1 + i%5
			rows, err := db.QueryContext(ctx, "SELECT g FROM generate_series(1, $1::int) g", want)
			if err != nil {
				return err
			}
			n := 0
			for rows.Next() {
				n++
			}
			if err := rows.Err(); err != nil {
				_ = rows.Close()
				return err
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if n != want {
				return fmt.Errorf("generate_series(1, %d) returned %d rows", want, n)
			}
		}
		return nil
	}
}

// resExtOp is traffic through the extension's Execute and FetchOne.
func resExtOp(x *pgpurepy.Pool) resOp {
	return func(ctx context.Context, i int) error {
		if i%2 == 0 {
			want := int64(1 + i%4)
			n, err := x.Execute(ctx, "SELECT generate_series(1, $1::int)", want)
			if err != nil {
				return err
			}
			if n != want {
				return fmt.Errorf("Execute of generate_series(1, %d) affected %d rows", want, n)
			}
			return nil
		}
		row, err := x.FetchOne(ctx, "SELECT $1::int + 1", i)
		if err != nil {
			return err
		}
		var got int
		if err := row.Scan(&got); err != nil {
			return err
		}
		if got != i+1 {
			return fmt.Errorf("SELECT $1::int + 1 with %d returned %d", i, got)
		}
		return nil
	}
}

// resMixedOp alternates database/sql and the extension.
func resMixedOp(db *sql.DB, x *pgpurepy.Pool) resOp {
	viaSQL, viaExt := resSQLOp(db), resExtOp(x)
	return func(ctx context.Context, i int) error {
		if (i/3)%2 == 0 {
			return viaSQL(ctx, i)
		}
		return viaExt(ctx, i)
	}
}

// resTally counts operations and failures, keeping a few failures to show.
type resTally struct {
	mu      sync.Mutex
	ops     int
	failed  int
	samples []string
}

func (r *resTally) add(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops++
	if err == nil {
		return
	}
	r.failed++
	if len(r.samples) < 5 {
		r.samples = append(r.samples, err.Error())
	}
}

func (r *resTally) counts() (ops, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ops, r.failed
}

func (r *resTally) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := fmt.Sprintf("%d of %d operations failed", r.failed, r.ops)
	for _, e := range r.samples {
		s += "\n\t" + e
	}
	return s
}

// requireZero fails t when any operation failed.
func (r *resTally) requireZero(t testing.TB, what string) {
	t.Helper()
	ops, failed := r.counts()
	if ops == 0 {
		t.Fatalf("%s: no operation ran", what)
	}
	if failed != 0 {
		t.Fatalf("%s: %s", what, r)
	}
	t.Logf("%s: %d operations, none failed", what, ops)
}

// resRun runs n operations of op from workers goroutines.
func resRun(workers, n int, op resOp) *resTally {
	tally := &resTally{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), resOpTimeout)
				err := op(ctx, i)
				cancel()
				tally.add(err)
			}
		})
	}
	if hung := resWaitGroup(&wg); hung != "" {
		tally.add(errors.New(hung))
	}
	return tally
}

// resWaitGroup waits for wg, but no longer than an operation may take plus
// a margin: a driver that hangs must fail the test, not stall the package.
// It returns "" or a description of the hang with the driver's goroutines.
func resWaitGroup(wg *sync.WaitGroup) string {
	return resWaitGroupFor(wg, resOpTimeout+resPollBound)
}

func resWaitGroupFor(wg *sync.WaitGroup, bound time.Duration) string {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return ""
	case <-time.After(bound):
	}
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var stacks []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if (strings.Contains(g, "github.com/pgpurepy/pgpurepy.(") || strings.Contains(g, "jackc/pgx")) &&
			!strings.Contains(g, "resWaitGroupFor") && !strings.Contains(g, "testing.(*M)") {
			stacks = append(stacks, g)
		}
	}
	return fmt.Sprintf("still running after %v (any context ended long ago); driver goroutines:\n%s",
		bound, strings.Join(stacks, "\n\n"))
}

// secWithPassword replaces the password in a URL DSN.
func secWithPassword(t testing.TB, dsn, password string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String()
}

// secRandom returns a random token that appears nowhere else.
func secRandom(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}
