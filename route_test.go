package pgpurepy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// Tests of load_balance_hosts (balance.go) and of the reads a context
// marked with PreferStandby sends to a standby (standby.go), on real
// servers: two proxies in front of one server, and a primary with a
// streaming standby from sqltest.StartPair.

// lbTwoHosts returns a DSN on a fresh database of the shared server that
// lists two proxies in front of it, and the proxies.
func lbTwoHosts(t *testing.T, extra ...string) (string, *sqltest.Proxy, *sqltest.Proxy) {
	t.Helper()
	first, second := resProxy(t), resProxy(t)
	u, err := url.Parse(sqltest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = first.Addr() + "," + second.Addr()
	dsn := u.String()
	for _, e := range extra {
		dsn += "&" + e
	}
	return dsn, first, second
}

// TestLoadBalanceHostsRandom fills a pool of 32 connections on a DSN of two
// hosts: with load_balance_hosts=random both get some (all 32 on one host
// has a chance of 2 in 2^32), with disable, the default, the first gets
// them all.
func TestLoadBalanceHostsRandom(t *testing.T) {
	t.Parallel()
	const n = 32
	for _, mode := range []string{"random", "disable", ""} {
		t.Run("load_balance_hosts="+mode, func(t *testing.T) {
			extra := []string{"connection_count=32", "min_connections=32"}
			if mode != "" {
				extra = append(extra, "load_balance_hosts="+mode)
			}
			dsn, first, second := lbTwoHosts(t, extra...)
			db, x := resOpen(t, dsn)
			resWarm(t, db, x)
			a, b := first.Connections(), second.Connections()
			t.Logf("first host: %d connections, second: %d", a, b)
			if a+b != n {
				t.Fatalf("%d connections through the proxies, want %d", a+b, n)
			}
			if mode == "random" && (a == 0 || b == 0) {
				t.Errorf("random: connections on the first host %d, on the second %d; want some on each", a, b)
			}
			if mode != "random" && b != 0 {
				t.Errorf("%q: %d connections on the second host, want all on the first", mode, b)
			}
			// No statement asked for a standby: the standby pool stays shut.
			if st := x.Stats(); st.StandbyConnections != 0 || st.StandbyStatements != 0 {
				t.Errorf("standby pool used without PreferStandby: %+v", st)
			}
		})
	}
}

// TestLoadBalanceHostsKeepsTLSOrder checks the shuffle on its own: every
// host comes first sometimes, and the two entries pgconn makes of a host
// for sslmode=prefer (TLS, then plain) stay together and in that order.
func TestLoadBalanceHostsKeepsTLSOrder(t *testing.T) {
	t.Parallel()
	cfg, err := pgconn.ParseConfig("host=a,b,c port=1,2,3 user=u sslmode=prefer")
	if err != nil {
		t.Fatal(err)
	}
	firsts := map[string]int{}
	for range 300 {
		cc := cfg.Copy()
		pgpurepy.ShuffleHosts(cc)
		all := append([]*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: cc.TLSConfig}}, cc.Fallbacks...)
		if len(all) != 6 {
			t.Fatalf("%d entries after the shuffle, want 6", len(all))
		}
		seen := map[string]bool{}
		for i := 0; i < len(all); i += 2 {
			tlsFirst, plain := all[i], all[i+1]
			if tlsFirst.Host != plain.Host || tlsFirst.Port != plain.Port || tlsFirst.TLSConfig == nil || plain.TLSConfig != nil {
				t.Fatalf("entries %d and %d: %s:%d (TLS %v), %s:%d (TLS %v); want one host, TLS first",
					i, i+1, tlsFirst.Host, tlsFirst.Port, tlsFirst.TLSConfig != nil, plain.Host, plain.Port, plain.TLSConfig != nil)
			}
			seen[tlsFirst.Host] = true
		}
		if len(seen) != 3 {
			t.Fatalf("hosts after the shuffle: %v", seen)
		}
		firsts[cc.Host]++
	}
	if len(firsts) != 3 {
		t.Errorf("hosts tried first in 300 shuffles: %v, want each of a, b, c", firsts)
	}
	// The order the DSN gave is untouched.
	if cfg.Host != "a" || cfg.Fallbacks[1].Host != "b" || cfg.Fallbacks[3].Host != "c" {
		t.Errorf("the shuffle changed the parsed config")
	}
}

// routeWhere is what a read reports of the server it ran on.
const routeWhere = "SELECT pg_is_in_recovery(), inet_server_port()"

// routeOn runs routeWhere through database/sql and returns whether it ran
// on a standby and the server's port.
func routeOn(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (standby bool, port int, err error) {
	err = q.QueryRowContext(ctx, routeWhere).Scan(&standby, &port)
	return standby, port, err
}

// routeRowOn reads routeWhere's answer from a row of the extension.
func routeRowOn(row *pgpurepy.Row, err error) (standby bool, port int, _ error) {
	if err != nil {
		return false, 0, err
	}
	err = row.Scan(&standby, &port)
	return standby, port, err
}

// routeExpect fails t unless a read ran on want.
func routeExpect(t *testing.T, what string, want *sqltest.Server, pair *sqltest.Pair, standby bool, port int, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if port != want.Port() || standby != (want == pair.Standby) {
		t.Errorf("%s: ran on port %d (in recovery %v); want port %d (primary %d, standby %d)",
			what, port, standby, want.Port(), pair.Primary.Port(), pair.Standby.Port())
	}
}

// routeReadOnlyError fails t unless err is the standby's refusal of a
// write, 25006.
func routeReadOnlyError(t *testing.T, what string, err error) {
	t.Helper()
	if code := pgCode(err); code != "25006" {
		t.Errorf("%s: error %v (code %q), want the standby's 25006", what, err, code)
	}
}

// TestRoutePreferStandby checks where each way of running a statement goes
// with and without the mark, on a read-write DSN that lists the primary
// and its standby, through database/sql and the extension.
func TestRoutePreferStandby(t *testing.T) {
	pair := haStartPair(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	P, S := pair.Primary, pair.Standby
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mark := pgpurepy.PreferStandby(ctx)
	db, err := sql.Open("pgpurepy", haKV(P, S, "read-write", "connection_count=2"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	x := ext(t, db)

	t.Run("database/sql", func(t *testing.T) {
		standby, port, err := routeOn(mark, db)
		routeExpect(t, "marked QueryRow", S, pair, standby, port, err)
		standby, port, err = routeOn(ctx, db)
		routeExpect(t, "unmarked QueryRow", P, pair, standby, port, err)

		rows, err := db.QueryContext(mark, routeWhere)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			err = rows.Scan(&standby, &port)
			routeExpect(t, "marked Query", S, pair, standby, port, err)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}

		_, err = db.ExecContext(mark, "CREATE TABLE route_marked (x int)")
		routeReadOnlyError(t, "marked Exec of a write", err)
		if _, err := db.ExecContext(ctx, "CREATE TABLE route_plain (x int)"); err != nil {
			t.Errorf("unmarked Exec of a write: %v", err)
		}

		st, err := db.PrepareContext(mark, routeWhere)
		if err != nil {
			t.Fatal(err)
		}
		err = st.QueryRowContext(mark).Scan(&standby, &port)
		routeExpect(t, "marked prepared statement", S, pair, standby, port, err)
		err = st.QueryRowContext(ctx).Scan(&standby, &port)
		routeExpect(t, "unmarked prepared statement", P, pair, standby, port, err)
		_ = st.Close()
	})

	t.Run("transaction", func(t *testing.T) {
		tx, err := db.BeginTx(mark, nil)
		if err != nil {
			t.Fatal(err)
		}
		standby, port, err := routeOn(mark, tx)
		routeExpect(t, "marked QueryRow in a transaction begun marked", P, pair, standby, port, err)
		if _, err := tx.ExecContext(mark, "INSERT INTO route_plain VALUES (1)"); err != nil {
			t.Errorf("marked write in a transaction: %v", err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("sql.Conn", func(t *testing.T) {
		// A *sql.Conn taken with the mark holds no connection until a
		// statement: a marked one runs on a standby and gives it back, so
		// the next one, unmarked, runs on the primary and keeps it.
		c, err := db.Conn(mark)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		standby, port, err := routeOn(mark, c)
		routeExpect(t, "marked QueryRow on a *sql.Conn", S, pair, standby, port, err)
		standby, port, err = routeOn(ctx, c)
		routeExpect(t, "then an unmarked one", P, pair, standby, port, err)
		standby, port, err = routeOn(mark, c)
		routeExpect(t, "then a marked one on the held connection", P, pair, standby, port, err)
	})

	t.Run("extension", func(t *testing.T) {
		standby, port, err := routeRowOn(x.FetchOne(mark, routeWhere))
		routeExpect(t, "marked FetchOne", S, pair, standby, port, err)
		standby, port, err = routeRowOn(x.FetchOne(ctx, routeWhere))
		routeExpect(t, "unmarked FetchOne", P, pair, standby, port, err)
		standby, port, err = routeRowOn(x.FetchOneOrNone(mark, routeWhere))
		routeExpect(t, "marked FetchOneOrNone", S, pair, standby, port, err)
		rows, err := x.Fetch(mark, routeWhere)
		if err != nil || len(rows) != 1 {
			t.Fatalf("marked Fetch: %d rows, %v", len(rows), err)
		}
		standby, port, err = routeRowOn(rows[0], nil)
		routeExpect(t, "marked Fetch", S, pair, standby, port, err)
		for row, err := range x.Query(mark, routeWhere) {
			standby, port, err = routeRowOn(row, err)
			routeExpect(t, "marked Query", S, pair, standby, port, err)
		}
		_, err = x.Execute(mark, "CREATE TABLE route_marked (x int)")
		routeReadOnlyError(t, "marked Execute of a write", err)

		err = x.CheckoutInTransaction(mark, func(c *pgpurepy.Conn) error {
			standby, port, err := routeRowOn(c.FetchOne(mark, routeWhere))
			routeExpect(t, "marked FetchOne in CheckoutInTransaction", P, pair, standby, port, err)
			_, err = c.Execute(mark, "INSERT INTO route_plain VALUES (2)")
			return err
		})
		if err != nil {
			t.Errorf("CheckoutInTransaction with the mark: %v", err)
		}
		err = x.Checkout(mark, func(c *pgpurepy.Conn) error {
			standby, port, err := routeRowOn(c.FetchOne(mark, routeWhere))
			routeExpect(t, "marked FetchOne in Checkout", P, pair, standby, port, err)
			return nil
		})
		if err != nil {
			t.Errorf("Checkout with the mark: %v", err)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		// Marked and unmarked statements and transactions from many
		// goroutines share both pools, and each lands where it should.
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 25 {
					var standby bool
					var port int
					var err error
					want := S
					switch (g + i) % 4 {
					case 0:
						standby, port, err = routeOn(mark, db)
					case 1:
						standby, port, err = routeRowOn(x.FetchOne(mark, routeWhere))
					case 2:
						want = P
						standby, port, err = routeOn(ctx, db)
					case 3:
						want = P
						err = x.CheckoutInTransaction(mark, func(c *pgpurepy.Conn) error {
							var err error
							standby, port, err = routeRowOn(c.FetchOne(mark, routeWhere))
							return err
						})
					}
					routeExpect(t, fmt.Sprintf("goroutine %d, statement %d", g, i), want, pair, standby, port, err)
				}
			})
		}
		wg.Wait()
	})

	t.Run("cancel", func(t *testing.T) {
		// A marked statement whose context ends is cancelled on the
		// standby, and its connection recovers as any other.
		before := x.Stats()
		cctx, ccancel := context.WithTimeout(mark, 100*time.Millisecond)
		defer ccancel()
		_, err := db.ExecContext(cctx, "SELECT pg_sleep(30)")
		assertCtxErr(t, err, context.DeadlineExceeded)
		resPoll(t, "the cancelled standby connection kept", func() (bool, string) {
			st := x.Stats()
			return st.CancelsKept == before.CancelsKept+1 && st.Recovering == 0, fmt.Sprintf("%+v", st)
		})
		if st := x.Stats(); st.CancelsLost != before.CancelsLost || st.StandbyStatements != before.StandbyStatements+1 {
			t.Errorf("CancelsLost went from %d to %d, StandbyStatements from %d to %d; want one more on a standby and no loss",
				before.CancelsLost, st.CancelsLost, before.StandbyStatements, st.StandbyStatements)
		}
		standby, port, err := routeOn(mark, db)
		routeExpect(t, "marked read after the cancel", S, pair, standby, port, err)
	})

	t.Run("stats", func(t *testing.T) {
		before := x.Stats()
		if before.StandbyStatements == 0 || before.StandbyConnections == 0 {
			t.Errorf("after marked reads: StandbyStatements %d, StandbyConnections %d", before.StandbyStatements, before.StandbyConnections)
		}
		if _, _, err := routeOn(mark, db); err != nil {
			t.Fatal(err)
		}
		if _, _, err := routeOn(ctx, db); err != nil {
			t.Fatal(err)
		}
		if got := x.Stats().StandbyStatements; got != before.StandbyStatements+1 {
			t.Errorf("one marked and one unmarked read: StandbyStatements went from %d to %d, want one more", before.StandbyStatements, got)
		}
		if st := x.Stats(); st.StandbyConnections > st.MaxConnections {
			t.Errorf("StandbyConnections %d is more than connection_count %d", st.StandbyConnections, st.MaxConnections)
		}
	})

	t.Run("multiplexing", func(t *testing.T) {
		// With multiplexing on, unmarked autocommit statements share the
		// primary's connections, and marked ones still go to a standby:
		// the multiplexer's carriers are on the primary.
		defer pgpurepy.SetMuxQuiet(false)()
		mdb, err := sql.Open("pgpurepy", haKV(P, S, "read-write", "connection_count=2", "multiplexing=on"))
		if err != nil {
			t.Fatal(err)
		}
		defer mdb.Close()
		mx := ext(t, mdb)
		standby, port, err := routeOn(ctx, mdb)
		routeExpect(t, "unmarked QueryRow", P, pair, standby, port, err)
		if n := mx.Stats().MultiplexedStatements; n == 0 {
			t.Errorf("unmarked QueryRow: MultiplexedStatements %d, want it multiplexed", n)
		}
		before := mx.Stats()
		standby, port, err = routeOn(mark, mdb)
		routeExpect(t, "marked QueryRow", S, pair, standby, port, err)
		standby, port, err = routeRowOn(mx.FetchOne(mark, routeWhere))
		routeExpect(t, "marked FetchOne", S, pair, standby, port, err)
		_, err = mdb.ExecContext(mark, "CREATE TABLE route_mux (x int)")
		routeReadOnlyError(t, "marked Exec of a write", err)
		st := mx.Stats()
		if st.StandbyStatements != before.StandbyStatements+3 || st.MultiplexedStatements != before.MultiplexedStatements {
			t.Errorf("three marked statements: StandbyStatements %d -> %d, MultiplexedStatements %d -> %d; want 3 more on a standby and none multiplexed",
				before.StandbyStatements, st.StandbyStatements, before.MultiplexedStatements, st.MultiplexedStatements)
		}
		if err := mdb.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("standby_connection_count", func(t *testing.T) {
		// The standby pool has a size of its own: concurrent marked reads
		// share its one connection while the primary's pool has four.
		sdb, err := sql.Open("pgpurepy", haKV(P, S, "read-write", "connection_count=4", "standby_connection_count=1"))
		if err != nil {
			t.Fatal(err)
		}
		defer sdb.Close()
		sx := ext(t, sdb)
		const n = 6
		errs := make(chan error, n)
		for range n {
			go func() {
				var standby bool
				_, err := sdb.ExecContext(mark, "SELECT pg_sleep(0.05)")
				if err == nil {
					err = sdb.QueryRowContext(mark, "SELECT pg_is_in_recovery()").Scan(&standby)
				}
				if err == nil && !standby {
					err = errors.New("a marked read ran on the primary")
				}
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if st := sx.Stats(); st.StandbyConnections != 1 || st.StandbyStatements != 2*n || st.MaxConnections != 4 {
			t.Errorf("StandbyConnections %d, StandbyStatements %d, MaxConnections %d; want 1, %d, 4",
				st.StandbyConnections, st.StandbyStatements, st.MaxConnections, 2*n)
		}
		if err := sdb.Close(); err != nil {
			t.Fatal(err)
		}
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// routeWaitOn polls marked reads until one runs on want, and returns how
// many failed meanwhile: statements in flight when a server goes away may
// fail, as without routing.
func routeWaitOn(t *testing.T, what string, db *sql.DB, mark context.Context, pair *sqltest.Pair, want *sqltest.Server) int {
	t.Helper()
	failed := 0
	haWaitFor(t, what, time.Minute, func() (bool, error) {
		standby, port, err := routeOn(mark, db)
		if err != nil {
			failed++
			return false, err
		}
		return port == want.Port() && standby == (want == pair.Standby), nil
	})
	return failed
}

// TestRouteStandbyDown stops the standby: marked reads go to the primary,
// without errors once the pool has seen it, and come back to the standby
// when it runs again.
func TestRouteStandbyDown(t *testing.T) {
	t.Parallel()
	pair := haStartPair(t)
	P, S := pair.Primary, pair.Standby
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mark := pgpurepy.PreferStandby(ctx)
	db := haOpen(t, haKV(P, S, "read-write", "connection_count=2"))
	x := ext(t, db)
	standby, port, err := routeOn(mark, db)
	routeExpect(t, "marked read, standby up", S, pair, standby, port, err)

	if err := S.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	failed := routeWaitOn(t, "marked read on the primary, standby down", db, mark, pair, P)
	t.Logf("%d marked reads failed while the pool saw the standby go", failed)
	counted := x.Stats().StandbyStatements
	// More readers than connection_count, for longer than the second
	// after which the pool tries a standby again, so that those tries
	// meet statements in flight: none may fail.
	var wg sync.WaitGroup
	start := time.Now()
	for g := range 6 {
		wg.Go(func() {
			for i := 0; time.Since(start) < 2500*time.Millisecond; i++ {
				standby, port, err := routeOn(mark, db)
				routeExpect(t, fmt.Sprintf("reader %d, marked read %d, standby down", g, i), P, pair, standby, port, err)
				standby, port, err = routeRowOn(x.FetchOne(mark, routeWhere))
				routeExpect(t, fmt.Sprintf("reader %d, marked FetchOne %d, standby down", g, i), P, pair, standby, port, err)
			}
		})
	}
	wg.Wait()
	if st := x.Stats(); st.StandbyStatements != counted || st.StandbyConnections != 0 {
		t.Errorf("standby down: StandbyStatements went from %d to %d, StandbyConnections %d; want no change and 0",
			counted, st.StandbyStatements, st.StandbyConnections)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE route_down (x int)"); err != nil {
		t.Errorf("write while the standby is down: %v", err)
	}

	if err := S.StartAgain(ctx); err != nil {
		t.Fatal(err)
	}
	failed = routeWaitOn(t, "marked read on the standby again", db, mark, pair, S)
	if failed != 0 {
		t.Errorf("%d marked reads failed while the standby came back, want none", failed)
	}
}

// TestRouteStandbyPromoted promotes the standby (the old primary keeps
// running, so there are two): the standby pool's connections are replaced,
// no server qualifies as a standby any more, and marked reads go to the
// pool's primary.
func TestRouteStandbyPromoted(t *testing.T) {
	t.Parallel()
	pair := haStartPair(t)
	P, S := pair.Primary, pair.Standby
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mark := pgpurepy.PreferStandby(ctx)
	db := haOpen(t, haKV(P, S, "read-write", "connection_count=2"))
	x := ext(t, db)
	standby, port, err := routeOn(mark, db)
	routeExpect(t, "marked read before the promotion", S, pair, standby, port, err)
	if err := pair.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	failed := routeWaitOn(t, "marked read on the primary after the promotion", db, mark, pair, P)
	if failed != 0 {
		t.Errorf("%d marked reads failed after the promotion, want none", failed)
	}
	resPoll(t, "standby pool empty", func() (bool, string) {
		st := x.Stats()
		return st.StandbyConnections == 0, fmt.Sprintf("%+v", st)
	})
}

// TestRouteSingleHostIgnoresMark: a DSN with one host has no standby pool,
// and a marked statement runs as any other.
func TestRouteSingleHostIgnoresMark(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	mark := pgpurepy.PreferStandby(context.Background())
	var one int
	if err := db.QueryRowContext(mark, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("marked read: %d, %v", one, err)
	}
	if _, err := x.FetchOne(mark, "SELECT 1"); err != nil {
		t.Fatalf("marked FetchOne: %v", err)
	}
	tx, err := db.BeginTx(mark, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRowContext(mark, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if st := x.Stats(); st.StandbyStatements != 0 || st.StandbyConnections != 0 {
		t.Errorf("single host: StandbyStatements %d, StandbyConnections %d; want 0", st.StandbyStatements, st.StandbyConnections)
	}
}
