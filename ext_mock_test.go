package pgpurepy_test

// The paths of the extension a real server cannot force on demand.
//
// go-sqlmock is not used here, on purpose: sqlmock builds a *sql.DB on its
// own driver, and Ext of such a DB is (correctly) ErrNotPgpurepy, while
// Pool.CheckoutInTransaction does not go through database/sql at all: it
// sends BEGIN and COMMIT on a pool session with pgconn. A scripted
// "COMMIT fails" in sqlmock would therefore exercise only sqlmock. The one
// thing sqlmock would give us, a *sql.DB of another driver, is a ten-line
// fake driver below, without a new module dependency. A network error
// exactly at COMMIT is produced instead with sqltest's fault proxy in front
// of the real server: fn cuts (or stalls) the network after its last
// statement and returns nil, so the COMMIT is the statement that meets the
// fault.

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// extFakeDriver is a database/sql driver that is not pgpurepy.
type extFakeDriver struct{}

func (extFakeDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("extFakeDriver: no connections")
}

// extConnector is a driver.Connector whose Driver is d.
type extConnector struct{ d driver.Driver }

func (c extConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open("") }
func (c extConnector) Driver() driver.Driver                        { return c.d }

func TestExtNotPgpurepy(t *testing.T) {
	for name, d := range map[string]driver.Driver{
		"another driver": extFakeDriver{},
		// The registered pgpurepy Driver belongs to no pool: a *sql.DB
		// whose connector only hands it out has no extension.
		"pool-less pgpurepy Driver": &pgpurepy.Driver{},
	} {
		db := sql.OpenDB(extConnector{d: d})
		x, err := pgpurepy.Ext(db)
		if !errors.Is(err, pgpurepy.ErrNotPgpurepy) || x != nil {
			t.Errorf("%s: Ext = %v, %v; want nil, ErrNotPgpurepy", name, x, err)
		}
		_ = db.Close()
	}
}

// extProxyDB opens a pool of one connection to a fresh database through a
// fault proxy, and a direct *sql.DB to the same database for checking.
func extProxyDB(t *testing.T) (x *pgpurepy.Pool, px *sqltest.Proxy, direct *sql.DB) {
	t.Helper()
	dsn := sqltest.DB(t)
	srv := sqltest.Shared(t)
	px, err := sqltest.NewProxy(net.JoinHostPort(srv.Host(), strconv.Itoa(srv.Port())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	db, err := sql.Open("pgpurepy", viaProxy(t, dsn, px)+"&connection_count=1&cancel_grace=300ms")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	direct, err = sql.Open("pgpurepy", dsn+"&connection_count=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.Close() })
	mustExec(t, direct, "CREATE TABLE ext_cut (v int)")
	x = ext(t, db)
	extWarm(t, x)
	return x, px, direct
}

// extRecovers waits until the pool serves a transaction again and checks
// its data arrives.
func extRecovers(t *testing.T, x *pgpurepy.Pool, direct *sql.DB) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(extBound)
	for {
		err := x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
			_, err := c.Execute(ctx, "INSERT INTO ext_cut VALUES (2)")
			return err
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool did not recover: %v; stats %+v", err, x.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	var n int
	if err := direct.QueryRow("SELECT count(*) FROM ext_cut WHERE v = 2").Scan(&n); err != nil || n != 1 {
		t.Fatalf("transaction after recovery: %d rows, %v", n, err)
	}
}

// extWaitNoOpenTx waits until the server has no session of the current
// database idle in transaction (a cut client's backend notices the cut and
// aborts its transaction).
func extWaitNoOpenTx(t *testing.T, direct *sql.DB) {
	t.Helper()
	deadline := time.Now().Add(extBound)
	for {
		var n int
		err := direct.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'").Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still idle in transaction", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExtCommitNetworkCut: the network breaks exactly before COMMIT. The
// commit cannot have happened (the proxy dropped it), and
// CheckoutInTransaction must say it failed: never nil, and not
// ErrTxRolledBack either, which claims a known outcome. The broken
// connection is replaced and the pool serves again.
func TestExtCommitNetworkCut(t *testing.T) {
	x, px, direct := extProxyDB(t)
	ctx := context.Background()
	closedBefore := x.Stats().ConnectionsClosed["broken"]

	err := x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
		if _, err := c.Execute(ctx, "INSERT INTO ext_cut VALUES (1)"); err != nil {
			return err
		}
		px.Cut()
		return nil
	})
	if err == nil {
		t.Fatal("CheckoutInTransaction reported success for a COMMIT that never reached the server")
	}
	if errors.Is(err, pgpurepy.ErrTxRolledBack) {
		t.Fatalf("a network error at COMMIT reported as a known rollback: %v", err)
	}
	t.Logf("error at COMMIT: %v (wraps driver.ErrBadConn: %v)", err, errors.Is(err, driver.ErrBadConn))

	extWaitNoOpenTx(t, direct)
	var n int
	if err := direct.QueryRow("SELECT count(*) FROM ext_cut").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after the cut: %d rows, %v", n, err)
	}
	if s := x.Stats(); s.InUse != 0 || s.ConnectionsClosed["broken"] <= closedBefore {
		t.Fatalf("the broken connection was not given up: %+v", s)
	}
	extRecovers(t, x, direct)
}

// TestExtCommitNetworkStall: the network stalls exactly before COMMIT and
// the caller's context has a deadline. CheckoutInTransaction must return
// once the deadline (plus the cancel grace) has passed, with an error that
// wraps context.DeadlineExceeded, rather than wait for the network forever.
func TestExtCommitNetworkStall(t *testing.T) {
	x, px, direct := extProxyDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()

	done := make(chan error, 1)
	go func() {
		done <- x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
			if _, err := c.Execute(ctx, "INSERT INTO ext_cut VALUES (1)"); err != nil {
				return err
			}
			px.Pause()
			return nil
		})
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Errorf("CheckoutInTransaction still blocked in COMMIT 10s after its 500ms deadline: the caller's context is not applied to COMMIT")
		px.Cut() // unblock it, dropping the held COMMIT
		err = <-done
	}
	if err == nil {
		t.Error("CheckoutInTransaction reported success for a COMMIT whose answer never came")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	// Drop what the proxy holds, so the COMMIT never arrives, and let the
	// network work again.
	px.Cut()
	px.Resume()
	extWaitNoOpenTx(t, direct)
	var n int
	if err := direct.QueryRow("SELECT count(*) FROM ext_cut").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after the stall: %d rows, %v", n, err)
	}
	extRecovers(t, x, direct)
}
