package pgpurepy_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

func TestCancelExecKeepsConnection(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	db, _ := openDB(t, "connection_count=1")
	assertCancelKeepsConnection(t, db, ext(t, db), "cancel-exec")
	_ = db.Close()
}

func TestCancelDuringRowIteration(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	pid := backendPID(t, db)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rows, err := db.QueryContext(ctx, "SELECT generate_series(1, 100000000), repeat('x', 200) WHERE $1 /* cancel-rows */", true)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
		if n == 1000 {
			cancel()
		}
	}
	assertCtxErr(t, rows.Err(), context.Canceled)
	_ = rows.Close()
	waitNoActive(t, db, "cancel-rows")
	if got := backendPID(t, db); got != pid {
		t.Fatalf("backend pid changed from %d to %d", pid, got)
	}
}

func TestCancelPreparedStatement(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	pid := backendPID(t, db)
	st, err := db.Prepare("SELECT pg_sleep($1)")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = st.ExecContext(ctx, 30)
	assertCtxErr(t, err, context.DeadlineExceeded)
	if _, err := st.Exec(0); err != nil {
		t.Fatalf("statement after cancel: %v", err)
	}
	if got := backendPID(t, db); got != pid {
		t.Fatalf("backend pid changed from %d to %d", pid, got)
	}
}

func TestCancelInTransactionRollsBack(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	mustExec(t, db, "CREATE TABLE t (v int)")
	pid := backendPID(t, db)
	opened := x.Stats().ConnectionsOpened

	ctx, cancel := context.WithCancel(context.Background())
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	_, err = tx.ExecContext(ctx, "SELECT pg_sleep(30)")
	assertCtxErr(t, err, context.Canceled)
	if err := tx.Commit(); err == nil {
		t.Fatal("commit of a cancelled transaction succeeded")
	}

	var n int
	if err := db.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows survived the cancelled transaction", n)
	}
	if got := backendPID(t, db); got != pid {
		t.Fatalf("database/sql discarded the connection after the rollback: pid %d -> %d", pid, got)
	}
	if got := x.Stats().ConnectionsOpened; got != opened {
		t.Fatalf("pool opened %d new connections", got-opened)
	}
}

func TestCancelExtension(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := x.Execute(ctx, "SELECT pg_sleep(30)")
	assertCtxErr(t, err, context.DeadlineExceeded)

	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	err = x.CheckoutInTransaction(ctx2, func(c *pgpurepy.Conn) error {
		if _, err := c.Execute(ctx2, "CREATE TABLE tx_cancel (v int)"); err != nil {
			return err
		}
		_, err := c.Execute(ctx2, "SELECT pg_sleep(30)")
		return err
	})
	assertCtxErr(t, err, context.DeadlineExceeded)
	if _, err := x.Execute(context.Background(), "SELECT 1 FROM tx_cancel"); err == nil {
		t.Fatal("table created in the cancelled transaction exists")
	}
	if s := x.Stats(); s.ConnectionsOpened != 1 {
		t.Fatalf("pool opened %d connections, want 1", s.ConnectionsOpened)
	}
}

// TestCancelStress cancels at random moments (before, during and just after
// the statement) and then runs a normal statement on the same connection,
// which must never see a stale cancel.
func TestCancelStress(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	const iterations = 2000
	failures := 0
	err := x.Checkout(context.Background(), func(c *pgpurepy.Conn) error {
		for i := range iterations {
			d := time.Duration(rand.IntN(1500)) * time.Microsecond
			ctx, cancel := context.WithTimeout(context.Background(), d)
			_, _ = c.Execute(ctx, "SELECT pg_sleep(0.001 * $1)", rand.IntN(3))
			cancel()
			row, err := c.FetchOne(context.Background(), "SELECT $1::int", i)
			if err != nil {
				failures++
				t.Errorf("iteration %d: statement after cancel failed: %v", i, err)
				continue
			}
			var got int
			if err := row.Scan(&got); err != nil || got != i {
				t.Errorf("iteration %d: got %d, %v", i, got, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s := x.Stats()
	t.Logf("%d iterations: %d cancels sent, %d kept, %d lost, %d connections opened, %d failures",
		iterations, s.CancelsSent, s.CancelsKept, s.CancelsLost, s.ConnectionsOpened, failures)
}

// TestCancelNetworkCut stops the network under a running statement: the
// caller gets its context error, the connection is given up after the grace
// and the pool serves again once the network is back.
func TestCancelNetworkCut(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	px := resProxy(t)
	db, x := resOpen(t, viaProxy(t, sqltest.DB(t), px)+"&connection_count=2&cancel_grace=300ms")
	if err := db.Ping(); err != nil {
		t.Fatal(err)
	}

	px.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := db.ExecContext(ctx, "SELECT 1")
	assertCtxErr(t, err, context.DeadlineExceeded)
	px.Cut()
	px.Resume()

	// Connections dialled while the cut happened may fail; the pool must
	// recover by itself within a generous bound.
	resPoll(t, "pool serves again after the cut", func() (bool, string) {
		var one int
		err := db.QueryRow("SELECT 1").Scan(&one)
		return err == nil, fmt.Sprint(err)
	})
	t.Logf("stats after the cut: %+v", x.Stats())
	_ = db.Close()
	_ = px.Close()
}

// TestCancelReturnsAtDeadlineWhenServerSilent holds every byte between the
// driver and the server: the caller still gets its error at its deadline,
// not at the end of the (one minute) grace. The connection recovers in the
// background once the network is back, and a holder that uses it meanwhile
// waits for that, bounded by its own context.
func TestCancelReturnsAtDeadlineWhenServerSilent(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	px := resProxy(t)
	db, x := resOpen(t, viaProxy(t, sqltest.DB(t), px)+"&connection_count=1&cancel_grace=1m")
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pid := backendPID(t, c)

	px.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = c.ExecContext(ctx, "SELECT 1")
	cancel()
	assertCtxErr(t, err, context.DeadlineExceeded)
	// With the network held, the recovery cannot have ended (it waits for
	// the server, or for the one-minute grace): the call returned without
	// waiting for it.
	if s := x.Stats(); s.Recovering != 1 || s.CancelsLost != 0 {
		t.Fatalf("the call returned after its recovery ended: it waited for the server, not for its context: %+v", s)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = c.ExecContext(ctx, "SELECT 2")
	cancel()
	assertCtxErr(t, err, context.DeadlineExceeded)
	if !strings.Contains(err.Error(), "recover") {
		t.Fatalf("error %q does not say the connection is recovering", err)
	}

	px.Resume()
	if got := backendPID(t, c); got != pid {
		t.Fatalf("backend pid changed from %d to %d: the connection was replaced", pid, got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// Through the pool: the statement returns at its deadline and the
	// session goes back to the pool only once recovered, so the next
	// caller (one connection in all) gets it clean.
	px.Pause()
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = db.ExecContext(ctx, "SELECT 3")
	cancel()
	assertCtxErr(t, err, context.DeadlineExceeded)
	px.Resume()
	if got := backendPID(t, db); got != pid {
		t.Fatalf("backend pid changed from %d to %d: the connection was replaced", pid, got)
	}
	s := x.Stats()
	if s.ConnectionsOpened != 1 || s.CancelsKept != 2 || s.CancelsLost != 0 {
		t.Fatalf("want one connection kept through two cancels, got %+v", s)
	}
	_ = db.Close()
	_ = px.Close()
}

// TestCancelMultiStatementOpeningTransaction cancels text that opened a
// transaction before the statement that was cancelled: the driver's view of
// the transaction status is corrected in the background, and the connection
// goes back to the pool outside any transaction.
func TestCancelMultiStatementOpeningTransaction(t *testing.T) {
	db, dsn := openDB(t, "connection_count=1")
	x := ext(t, db)
	pid := backendPID(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := db.ExecContext(ctx, "BEGIN; CREATE TABLE opened_then_cancelled (id int); SELECT pg_sleep(30)")
	cancel()
	assertCtxErr(t, err, context.DeadlineExceeded)

	resPoll(t, "connection back in the pool", func() (bool, string) {
		s := x.Stats()
		return s.IdleConnections == 1, fmt.Sprintf("%+v", s)
	})
	watcher, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	var state string
	if err := watcher.QueryRow("SELECT state FROM pg_stat_activity WHERE pid = $1", pid).Scan(&state); err != nil {
		t.Fatal(err)
	}
	if state != "idle" {
		t.Fatalf("idle connection in state %q, want idle (outside any transaction)", state)
	}
	var exists bool
	if err := db.QueryRow("SELECT to_regclass('opened_then_cancelled') IS NOT NULL").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatal("table created in the cancelled transaction exists")
	}
	if got := backendPID(t, db); got != pid {
		t.Fatalf("backend pid changed from %d to %d", pid, got)
	}
	if s := x.Stats(); s.CancelsKept != 1 || s.ConnectionsOpened != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestCancelDuringStalledWrite sends an argument larger than the socket
// buffers to a server that reads nothing (the proxy is paused): the write
// cannot finish, so the call gives up the connection to return at its
// deadline, and the pool replaces it once the network is back.
func TestCancelDuringStalledWrite(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	px := resProxy(t)
	const grace = time.Minute
	db, x := resOpen(t, viaProxy(t, sqltest.DB(t), px)+"&connection_count=1&cancel_grace=1m")
	// Twice while the network works: that prepares and caches the
	// statement (a text's first run is not cached), so that the stalled
	// call starts with its write, and times the encoding, which the race
	// detector makes slow, so that the context ends only once the write
	// has started.
	big := make([]byte, 16<<20)
	var (
		start time.Time
		n     int
	)
	for range 2 {
		start = time.Now()
		if err := db.QueryRow("SELECT length($1::bytea)", big).Scan(&n); err != nil || n != len(big) {
			t.Fatalf("%d, %v", n, err)
		}
	}
	wait := 2*time.Since(start) + 200*time.Millisecond

	px.Pause()
	ctx, cancel := context.WithCancel(context.Background())
	timer := time.AfterFunc(wait, cancel)
	defer timer.Stop()
	start = time.Now()
	_, err := db.ExecContext(ctx, "SELECT length($1::bytea)", big)
	cancel()
	assertCtxErr(t, err, context.Canceled)
	if took := time.Since(start); took > wait+grace/2 {
		t.Fatalf("the call returned after %v: it waited for the write, not for its context", took)
	}
	px.Resume()

	if err := db.QueryRow("SELECT length($1::bytea)", []byte("abc")).Scan(&n); err != nil || n != 3 {
		t.Fatalf("after the stalled write: %d, %v", n, err)
	}
	if s := x.Stats(); s.ConnectionsOpened != 2 {
		t.Fatalf("want the stalled connection replaced, got %+v", s)
	}
	_ = db.Close()
	_ = px.Close()
}

// TestCancelWhileValidatingConnection ends a connection attempt's context
// while pgconn validates the new connection (as target_session_attrs
// does): the cancel handler is already the driver's then, and must work.
func TestCancelWhileValidatingConnection(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cfg, err := pgpurepy.ParseConfig(sqltest.DB(t) + "&connect_timeout=2&connection_count=1&cancel_grace=1s")
	if err != nil {
		t.Fatal(err)
	}
	// A validation that outlasts the attempt's timeout.
	cfg.ConnConfig.ValidateConnect = func(ctx context.Context, pg *pgconn.PgConn) error {
		_, err := pg.Exec(ctx, "SELECT pg_sleep(30)").ReadAll()
		return err
	}
	c, err := pgpurepy.NewConnectorConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	x := ext(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("connected although validation could not finish in time")
	}
	// The cancel request goes out in the background.
	resPoll(t, "validation cancelled through the driver's handler", func() (bool, string) {
		s := x.Stats()
		return s.CancelsSent > 0, fmt.Sprintf("%+v", s)
	})
	_ = db.Close()
}
