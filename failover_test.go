package pgpurepy_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
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

// High availability tests (issue 9) on a real primary and hot standby from
// sqltest.StartPair. Timings are reported with t.Logf, never asserted; the
// polling bounds are generous because these are not timing tests.

// haStartPair starts a primary and a streaming standby, closed when the
// test ends.
func haStartPair(t *testing.T) *sqltest.Pair {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	p, err := sqltest.StartPair(ctx, sqltest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("pair started in %v: primary %s:%d, standby %s:%d", time.Since(start).Round(time.Millisecond),
		p.Primary.Host(), p.Primary.Port(), p.Standby.Host(), p.Standby.Port())
	return p
}

// haKV is a keyword/value DSN listing first and then second. extra is
// appended as is (space separated key=value pairs).
func haKV(first, second *sqltest.Server, tsa string, extra ...string) string {
	dsn := fmt.Sprintf("host=%s,%s port=%d,%d user=postgres dbname=postgres sslmode=disable target_session_attrs=%s",
		first.Host(), second.Host(), first.Port(), second.Port(), tsa)
	for _, e := range extra {
		dsn += " " + e
	}
	return dsn
}

// haURL is the URL form of haKV; extra are query parameters (key=value).
func haURL(first, second *sqltest.Server, tsa string, extra ...string) string {
	dsn := fmt.Sprintf("postgres://postgres@%s,%s/postgres?sslmode=disable&target_session_attrs=%s",
		net.JoinHostPort(first.Host(), strconv.Itoa(first.Port())),
		net.JoinHostPort(second.Host(), strconv.Itoa(second.Port())), url.QueryEscape(tsa))
	for _, e := range extra {
		dsn += "&" + e
	}
	return dsn
}

// haOpen opens a *sql.DB through sql.Open, closed when the test ends.
func haOpen(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// haQuery runs sql over a fresh pgconn connection (not the driver under
// test) and returns its rows as text.
func haQuery(ctx context.Context, dsn, sql string) ([][]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pg, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer pg.Close(context.Background())
	res, err := pg.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	var rows [][]string
	for _, r := range res {
		if r.Err != nil {
			return nil, r.Err
		}
		rows = rows[:0]
		for _, row := range r.Rows {
			cols := make([]string, len(row))
			for i, v := range row {
				cols[i] = string(v)
			}
			rows = append(rows, cols)
		}
	}
	return rows, nil
}

// haQueryValue returns the first column of the first row of sql's result.
func haQueryValue(ctx context.Context, dsn, sql string) (string, error) {
	rows, err := haQuery(ctx, dsn, sql)
	if err != nil {
		return "", err
	}
	if len(rows) == 0 || len(rows[0]) == 0 {
		return "", fmt.Errorf("%q returned no rows", sql)
	}
	return rows[0][0], nil
}

// haWaitFor polls cond every 20ms until it holds, failing the test after
// limit. It returns how long it took.
func haWaitFor(t *testing.T, what string, limit time.Duration, cond func() (bool, error)) time.Duration {
	t.Helper()
	start := time.Now()
	var last error
	for {
		ok, err := cond()
		if ok {
			return time.Since(start)
		}
		last = err
		if time.Since(start) > limit {
			t.Fatalf("%s: not reached within %v (last error: %v)", what, limit, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// haErrKind classifies an error for the failure report.
func haErrKind(err error) string {
	var pgErr *pgconn.PgError
	msg := err.Error()
	switch {
	case errors.As(err, &pgErr):
		return "sqlstate " + pgErr.Code + " (" + pgErr.Message + ")"
	case errors.Is(err, context.DeadlineExceeded):
		return "context deadline exceeded"
	case errors.Is(err, pgconn.ErrReadOnlyConnection) || strings.Contains(msg, "read only connection"):
		return "connect: only a read-only server reachable"
	case strings.Contains(msg, "connection refused") && strings.Contains(msg, "connect"):
		return "connect: connection refused"
	case errors.Is(err, driver.ErrBadConn):
		return "driver.ErrBadConn"
	case strings.Contains(msg, "unexpected EOF") || strings.Contains(msg, "EOF"):
		return "connection lost (EOF)"
	case strings.Contains(msg, "connection reset"):
		return "connection reset"
	case strings.Contains(msg, "conn closed"):
		return "conn closed (commit or rollback on a lost connection)"
	}
	if len(msg) > 120 {
		msg = msg[:120] + "..."
	}
	return "other: " + msg
}

// TestHAMultiHostDSN checks that target_session_attrs picks the right server
// of a multi-host DSN, in both DSN forms, through database/sql and through
// the extension.
func TestHAMultiHostDSN(t *testing.T) {
	t.Parallel()
	pair := haStartPair(t)
	P, S := pair.Primary, pair.Standby
	cases := []struct {
		tsa           string
		first, second *sqltest.Server
		want          *sqltest.Server
	}{
		{"read-write", P, S, P},
		{"read-write", S, P, P}, // the standby is listed first and skipped
		{"primary", P, S, P},
		{"primary", S, P, P},
		{"read-only", P, S, S},
		{"standby", P, S, S},
		{"prefer-standby", P, S, S},
		{"any", P, S, P}, // any: the first host
		{"any", S, P, S},
	}
	name := func(s *sqltest.Server) string {
		if s == P {
			return "primary"
		}
		return "standby"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range cases {
		for _, form := range []string{"kv", "url"} {
			dsn := haKV(c.first, c.second, c.tsa, "connection_count=1")
			if form == "url" {
				dsn = haURL(c.first, c.second, c.tsa, "connection_count=1")
			}
			t.Run(fmt.Sprintf("%s/%s_first/%s", c.tsa, name(c.first), form), func(t *testing.T) {
				wantRecovery := c.want == S
				check := func(via string, inRecovery bool, port int) {
					t.Helper()
					if inRecovery != wantRecovery || port != c.want.Port() {
						t.Errorf("%s: landed on port %d (pg_is_in_recovery=%v), want the %s on port %d",
							via, port, inRecovery, name(c.want), c.want.Port())
					}
				}
				const q = "SELECT pg_is_in_recovery(), inet_server_port()"

				db := haOpen(t, dsn)
				var rec bool
				var port int
				if err := db.QueryRowContext(ctx, q).Scan(&rec, &port); err != nil {
					t.Fatalf("database/sql: %v", err)
				}
				check("database/sql", rec, port)

				// A second pool used only through the extension, so that it
				// dials its own connection.
				x := ext(t, haOpen(t, dsn))
				row, err := x.FetchOne(ctx, q)
				if err != nil {
					t.Fatalf("extension: %v", err)
				}
				rec, port = false, 0
				if err := row.Scan(&rec, &port); err != nil {
					t.Fatalf("extension scan: %v", err)
				}
				check("extension", rec, port)
				if st := x.Stats(); st.Failovers != 0 || st.ReplacedForFailover != 0 {
					t.Errorf("fresh pool reports Failovers=%d ReplacedForFailover=%d", st.Failovers, st.ReplacedForFailover)
				}
			})
		}
	}

	// pgconn does not know load_balance_hosts; ParseConfig takes it out
	// (pgconn would send it to the server, which rejects it) and the
	// dialler applies it. route_test.go tests where connections land.
	t.Run("load_balance_hosts", func(t *testing.T) {
		for _, dsn := range []string{
			haKV(P, S, "read-write", "load_balance_hosts=random", "connection_count=1"),
			haURL(P, S, "read-write", "load_balance_hosts=random", "connection_count=1"),
		} {
			cfg, err := pgpurepy.ParseConfig(dsn)
			if err != nil {
				t.Fatalf("ParseConfig: %v", err)
			}
			if v, ok := cfg.ConnConfig.RuntimeParams["load_balance_hosts"]; ok || !cfg.LoadBalanceHosts {
				t.Errorf("load_balance_hosts=random: LoadBalanceHosts %v, left for the server: %v (%q)", cfg.LoadBalanceHosts, ok, v)
			}
			db := haOpen(t, dsn)
			var rec bool
			if err := db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil || rec {
				t.Errorf("read-write with load_balance_hosts=random: in recovery %v, err %v; want the primary", rec, err)
			}
		}
	})
}

// haWrite performs one acknowledged-or-not write and reports the id it
// inserted and the port of the server that acknowledged it.
type haWrite func(ctx context.Context, g, n int) (id int64, port int, err error)

// haEvent is one write attempt.
type haEvent struct {
	start, end time.Time
	id         int64
	port       int
	err        error
}

// haEnableSyncRep makes the primary's commits wait until the standby has
// flushed their WAL. Without it a write the old primary acknowledged just
// before StopPrimary (-m immediate) may never have reached the standby:
// with asynchronous replication such a loss is a property of the
// replication, not of the driver, and "no acknowledged write is lost" could
// not be asserted. It cannot go through Options.ServerConfig: StartPair
// applies it to both servers, so the primary would block on its own setup
// before the standby exists, and the promoted standby, which has no standby
// of its own, would block every write. ALTER SYSTEM writes only the
// primary's postgresql.auto.conf, which is not replicated. sqltest sets
// synchronous_commit=off, which would skip the wait, so it is turned on too.
// The standby made by pg_basebackup -R has application_name walreceiver,
// which '*' matches.
func haEnableSyncRep(t *testing.T, pair *sqltest.Pair) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, q := range []string{
		"ALTER SYSTEM SET synchronous_standby_names = '*'",
		"ALTER SYSTEM SET synchronous_commit = 'on'",
		"SELECT pg_reload_conf()",
	} {
		if err := pair.Primary.Exec(ctx, "", q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	d := haWaitFor(t, "synchronous replication", 30*time.Second, func() (bool, error) {
		st, err := haQueryValue(ctx, pair.Primary.DSN(""), "SELECT sync_state FROM pg_stat_replication")
		if err != nil || st != "sync" {
			return false, fmt.Errorf("sync_state %q: %v", st, err)
		}
		sc, err := haQueryValue(ctx, pair.Primary.DSN(""), "SHOW synchronous_commit")
		return err == nil && sc == "on", err
	})
	t.Logf("synchronous replication active after %v", d.Round(time.Millisecond))
}

// haFailover runs 16 writers against a read-write multi-host DSN (primary
// first), stops the primary and promotes the standby after about a second,
// lets the writers run two more seconds on the new primary, and checks
// that every acknowledged write is on the new primary and that failures
// happened only around the switch.
func haFailover(t *testing.T, mkWrite func(db *sql.DB) haWrite) {
	const (
		writers = 16
		before  = time.Second     // writes before the primary stops
		after   = 2 * time.Second // writes after the first one on the new primary
		settle  = time.Second     // after the first write on the new primary, no more failures
		pause   = 20 * time.Millisecond
	)
	pair := haStartPair(t)
	haEnableSyncRep(t, pair)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := pair.Primary.Exec(ctx, "", "CREATE TABLE w (id bigserial PRIMARY KEY, g int, n int)"); err != nil {
		t.Fatal(err)
	}
	haWaitFor(t, "table w on the standby", 30*time.Second, func() (bool, error) {
		v, err := haQueryValue(ctx, pair.Standby.DSN(""), "SELECT to_regclass('w') IS NOT NULL")
		return v == "t", err
	})

	db := haOpen(t, haKV(pair.Primary, pair.Standby, "read-write", "connection_count=8"))
	x := ext(t, db)
	write := mkWrite(db)
	oldPort, newPort := pair.Primary.Port(), pair.Standby.Port()

	var (
		mu        sync.Mutex
		events    []haEvent
		firstNew  = make(chan struct{})
		firstOnce sync.Once
		stop      atomic.Bool
		wg        sync.WaitGroup
	)
	for g := range writers {
		wg.Go(func() {
			for n := 0; !stop.Load(); n++ {
				wctx, wcancel := context.WithTimeout(context.Background(), 2*time.Second)
				ev := haEvent{start: time.Now()}
				ev.id, ev.port, ev.err = write(wctx, g, n)
				ev.end = time.Now()
				wcancel()
				mu.Lock()
				events = append(events, ev)
				mu.Unlock()
				if ev.err == nil && ev.port == newPort {
					firstOnce.Do(func() { close(firstNew) })
				}
				if ev.err != nil {
					// An application would back off too; this keeps the
					// failure count about the switch, not about spinning.
					time.Sleep(pause)
				}
			}
		})
	}
	stopWriters := sync.OnceFunc(func() { stop.Store(true); wg.Wait() })
	defer stopWriters()

	time.Sleep(before)
	tStop := time.Now()
	if err := pair.StopPrimary(ctx); err != nil {
		t.Fatalf("stop primary: %v", err)
	}
	tStopped := time.Now()
	if err := pair.Promote(ctx); err != nil {
		t.Fatalf("promote: %v", err)
	}
	tPromoted := time.Now()
	select {
	case <-firstNew:
	case <-time.After(60 * time.Second):
		stopWriters()
		t.Fatalf("no write acknowledged by the new primary within 60s of the promotion; stats %+v", x.Stats())
	}
	// The writer records its event before it closes firstNew, so the
	// earliest acknowledged write on the new server is in events.
	time.Sleep(after)
	stopWriters()

	mu.Lock()
	evs := slices.Clone(events)
	mu.Unlock()
	var tFirstNew time.Time
	acked := map[int64]bool{}
	ackedOld, ackedNew := 0, 0
	for _, ev := range evs {
		if ev.err != nil {
			continue
		}
		acked[ev.id] = true
		switch ev.port {
		case oldPort:
			ackedOld++
		case newPort:
			ackedNew++
			if tFirstNew.IsZero() || ev.end.Before(tFirstNew) {
				tFirstNew = ev.end
			}
		default:
			t.Errorf("write acknowledged by unknown port %d", ev.port)
		}
	}
	// Promote returns once its own polling connection sees the standby out
	// of recovery, so the writers can get there first.
	t.Logf("StopPrimary took %v, Promote returned %v after StopPrimary began; first write acknowledged by the new primary %v after StopPrimary began",
		tStopped.Sub(tStop).Round(time.Millisecond), tPromoted.Sub(tStop).Round(time.Millisecond),
		tFirstNew.Sub(tStop).Round(time.Millisecond))

	// Failures: none before the switch, none after the settle window.
	kinds := map[string]int{}
	failures, late := 0, 0
	var lastFail time.Time
	for _, ev := range evs {
		if ev.err == nil {
			continue
		}
		failures++
		kinds[haErrKind(ev.err)]++
		if ev.end.After(lastFail) {
			lastFail = ev.end
		}
		switch {
		case ev.end.Before(tStop):
			t.Errorf("write failed before the primary was stopped: %v", ev.err)
		case ev.start.After(tFirstNew.Add(settle)):
			late++
			if late <= 5 {
				t.Errorf("write started %v after the first write on the new primary failed: %v",
					ev.start.Sub(tFirstNew).Round(time.Millisecond), ev.err)
			}
		}
	}
	if late > 5 {
		t.Errorf("... %d late failures in all", late)
	}
	t.Logf("%d writes: %d acknowledged (%d by the old primary, %d by the new one), %d failed (writers pause %v after a failure)",
		len(evs), len(acked), ackedOld, ackedNew, failures, pause)
	if failures > 0 {
		t.Logf("last failure ended %v after StopPrimary began (the first write on the new primary: %v)",
			lastFail.Sub(tStop).Round(time.Millisecond), tFirstNew.Sub(tStop).Round(time.Millisecond))
	}
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		t.Logf("  failure kind %q: %d", k, kinds[k])
	}
	if ackedOld == 0 {
		t.Error("no write was acknowledged by the old primary")
	}

	// Zero lost acknowledged writes: every acknowledged id is on the new
	// primary.
	rows, err := haQuery(ctx, pair.Standby.DSN(""), "SELECT id FROM w")
	if err != nil {
		t.Fatalf("read w on the new primary: %v", err)
	}
	present := make(map[int64]bool, len(rows))
	for _, r := range rows {
		id, err := strconv.ParseInt(r[0], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		present[id] = true
	}
	lost := 0
	for id := range acked {
		if !present[id] {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged write id %d is missing on the new primary", id)
			}
		}
	}
	t.Logf("new primary holds %d rows; %d acknowledged writes lost; %d rows committed without an acknowledgement (in flight at the switch)",
		len(present), lost, len(present)-(len(acked)-lost))
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes lost", lost, len(acked))
	}

	st := x.Stats()
	t.Logf("stats: Failovers=%d ReplacedForFailover=%d ConnectionsOpened=%d ConnectFailures=%d ConnectionsClosed=%v",
		st.Failovers, st.ReplacedForFailover, st.ConnectionsOpened, st.ConnectFailures, st.ConnectionsClosed)
	if st.Failovers < 1 {
		t.Errorf("Stats().Failovers = %d, want >= 1", st.Failovers)
	}
}

// TestHAFailoverDatabaseSQL: 16 goroutines INSERT ... RETURNING through
// database/sql while the primary is stopped and the standby promoted.
func TestHAFailoverDatabaseSQL(t *testing.T) {
	t.Parallel()
	haFailover(t, func(db *sql.DB) haWrite {
		return func(ctx context.Context, g, n int) (id int64, port int, err error) {
			err = db.QueryRowContext(ctx, "INSERT INTO w (g, n) VALUES ($1, $2) RETURNING id, inet_server_port()", g, n).Scan(&id, &port)
			return id, port, err
		}
	})
}

// TestHAFailoverCheckoutInTransaction is the same through the extension:
// each write is a transaction of CheckoutInTransaction, acknowledged when
// it returns nil (the commit succeeded).
func TestHAFailoverCheckoutInTransaction(t *testing.T) {
	t.Parallel()
	haFailover(t, func(db *sql.DB) haWrite {
		x, err := pgpurepy.Ext(db)
		if err != nil {
			panic(err)
		}
		return func(ctx context.Context, g, n int) (id int64, port int, err error) {
			err = x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
				row, err := c.FetchOne(ctx, "INSERT INTO w (g, n) VALUES ($1, $2) RETURNING id, inet_server_port()", g, n)
				if err != nil {
					return err
				}
				return row.Scan(&id, &port)
			})
			if err != nil {
				return 0, 0, err
			}
			return id, port, nil
		}
	})
}

// TestHAFencedPrimary: the only server of a read-write pool is fenced with
// default_transaction_read_only. The pool must not keep handing out its
// connections (each may fail one write with 25006, since the server
// applies the reload when the connection next talks to it, and is then
// replaced), later writes fail with a clear error because no server is
// writable, and once the fence is lifted writes succeed again by
// themselves.
func TestHAFencedPrimary(t *testing.T) {
	t.Parallel()
	const conns = 4
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A server of its own: ALTER SYSTEM must not touch the shared one.
	srv, err := sqltest.Start(ctx, sqltest.Options{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	db := haOpen(t, srv.DSN("")+"&target_session_attrs=read-write&connection_count="+strconv.Itoa(conns))
	x := ext(t, db)
	mustExec(t, db, "CREATE TABLE f (id serial PRIMARY KEY, n int)")

	// Warm the pool: hold conns connections at once, then give them back.
	var held []*sql.Conn
	for range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, "INSERT INTO f (n) VALUES (0)"); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	for _, c := range held {
		_ = c.Close()
	}
	haWaitFor(t, "warm pool", 10*time.Second, func() (bool, error) {
		st := x.Stats()
		return st.OpenConnections == conns && st.IdleConnections == conns, nil
	})

	insert := func() error {
		wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
		defer wcancel()
		_, err := db.ExecContext(wctx, "INSERT INTO f (n) VALUES (1)")
		return err
	}

	// Fence the server.
	for _, q := range []string{"ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()"} {
		if err := srv.Exec(ctx, "", q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	haWaitFor(t, "fence in effect", 10*time.Second, func() (bool, error) {
		v, err := haQueryValue(ctx, srv.DSN(""), "SHOW default_transaction_read_only")
		return v == "on", err
	})

	const attempts = 3 * conns
	var ok, readOnly int
	var errs []error
	for range attempts {
		err := insert()
		switch {
		case err == nil:
			ok++
		case pgCode(err) == "25006":
			readOnly++
		}
		errs = append(errs, err)
	}
	st := x.Stats()
	t.Logf("fenced: %d writes, %d succeeded, %d failed with 25006, %d with other errors; stats: ReplacedForFailover=%d OpenConnections=%d ConnectFailures=%d ConnectionsClosed=%v",
		attempts, ok, readOnly, attempts-ok-readOnly, st.ReplacedForFailover, st.OpenConnections, st.ConnectFailures, st.ConnectionsClosed)
	for i, err := range errs {
		t.Logf("  write %d: %v", i+1, err)
	}
	if readOnly > conns {
		t.Errorf("%d writes failed with 25006, want at most one per pooled connection (%d): read-only connections are handed out again", readOnly, conns)
	}
	if st.ReplacedForFailover == 0 {
		t.Error("Stats().ReplacedForFailover = 0 after the server became read-only")
	}
	// Once the pooled connections are gone, every write must fail up front
	// with an error that says why, not reach the read-only server.
	for i, err := range errs[conns:] {
		if err == nil {
			t.Errorf("write %d succeeded on a fenced server", conns+i+1)
			continue
		}
		if pgCode(err) == "25006" {
			t.Errorf("write %d: read-only connection handed out again: %v", conns+i+1, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "read only") && !strings.Contains(msg, "read-only") {
			t.Errorf("write %d: error does not say the server is read-only: %v", conns+i+1, err)
		}
	}
	haWaitFor(t, "read-only connections closed", 10*time.Second, func() (bool, error) {
		return x.Stats().OpenConnections == 0, nil
	})

	// Lift the fence: writes succeed again without any action on the pool.
	for _, q := range []string{"ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()"} {
		if err := srv.Exec(ctx, "", q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	tLift := time.Now()
	var last error
	haWaitFor(t, "writes after the fence is lifted", 30*time.Second, func() (bool, error) {
		last = insert()
		return last == nil, last
	})
	t.Logf("first write succeeded %v after the fence was lifted", time.Since(tLift).Round(time.Millisecond))
	for i := range 2 * conns {
		if err := insert(); err != nil {
			t.Errorf("write %d after recovery: %v", i+1, err)
		}
	}
	st = x.Stats()
	t.Logf("recovered: stats ReplacedForFailover=%d Failovers=%d OpenConnections=%d ConnectFailures=%d",
		st.ReplacedForFailover, st.Failovers, st.OpenConnections, st.ConnectFailures)
}

// TestHASessionReadOnlyIsNotAFailover: a read-write pool whose server is
// writable must tell an application's own read-only settings from a
// server that became read-only. A READ ONLY transaction and a session's
// SET default_transaction_read_only = on (a common guard for a read-only
// section in a *sql.Conn) make writes fail with 25006, but they are no
// failover: the connection stays usable for the rest of the transaction
// or *sql.Conn, nothing is counted as replaced for a failover, and the
// session keeps its other state.
func TestHASessionReadOnlyIsNotAFailover(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "target_session_attrs=read-write", "connection_count=2")
	x := ext(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mustExec(t, db, "CREATE TABLE s (n int)")

	// A READ ONLY transaction.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO s VALUES (1)"); pgCode(err) != "25006" {
		t.Errorf("insert in a READ ONLY transaction: %v, want SQLSTATE 25006", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Errorf("rollback: %v", err)
	}
	mustExec(t, db, "INSERT INTO s VALUES (2)")

	// The session's own default_transaction_read_only.
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "CREATE TEMPORARY TABLE session_state (x int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, "SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, "INSERT INTO s VALUES (3)"); pgCode(err) != "25006" {
		t.Errorf("insert after SET default_transaction_read_only = on: %v, want SQLSTATE 25006", err)
	}
	if _, err := c.ExecContext(ctx, "SET default_transaction_read_only = off"); err != nil {
		t.Errorf("the *sql.Conn did not survive its own read-only setting: %v", err)
	} else {
		if _, err := c.ExecContext(ctx, "INSERT INTO s VALUES (4)"); err != nil {
			t.Errorf("insert after SET default_transaction_read_only = off: %v", err)
		}
		if _, err := c.ExecContext(ctx, "SELECT count(*) FROM session_state"); err != nil {
			t.Errorf("session state lost: %v", err)
		}
	}
	_ = c.Close()
	mustExec(t, db, "INSERT INTO s VALUES (5)")
	st := x.Stats()
	t.Logf("stats: Failovers=%d ReplacedForFailover=%d ConnectionsClosed=%v", st.Failovers, st.ReplacedForFailover, st.ConnectionsClosed)
	if st.Failovers != 0 || st.ReplacedForFailover != 0 {
		t.Errorf("the application's own read-only settings counted as a failover: Failovers=%d ReplacedForFailover=%d",
			st.Failovers, st.ReplacedForFailover)
	}
}
