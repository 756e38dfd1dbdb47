package pgpurepy_test

import (
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// TestTxEmptySendsNothing: BeginTx, Commit and Rollback of a transaction
// that runs no statement make no round trip. The proxy between driver and
// server holds every byte, so any of them that waited for the server would
// end at its context instead.
func TestTxEmptySendsNothing(t *testing.T) {
	px := resProxy(t)
	// ping_after_idle=0: a slow machine must not turn the checkout into a
	// round trip.
	db, x := resOpen(t, viaProxy(t, sqltest.DB(t), px)+"&connection_count=1&ping_after_idle=0")
	dbsqlCheckWorks(t, db)
	px.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for name, end := range map[string]func(*sql.Tx) error{"Commit": (*sql.Tx).Commit, "Rollback": (*sql.Tx).Rollback} {
		tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
		if err != nil {
			t.Fatalf("BeginTx with the network held: %v", err)
		}
		if err := end(tx); err != nil {
			t.Fatalf("%s of an empty transaction with the network held: %v", name, err)
		}
	}
	if err := x.CheckoutInTransaction(ctx, func(*pgpurepy.Conn) error { return nil }); err != nil {
		t.Fatalf("empty CheckoutInTransaction with the network held: %v", err)
	}
	px.Resume()
	dbsqlCheckWorks(t, db)
	if s := x.Stats(); s.ConnectionsOpened != 1 {
		t.Fatalf("%d connections opened, want 1", s.ConnectionsOpened)
	}
}

// TestTxFirstStatementCarriesBegin checks that whatever the transaction's
// first contact with the server is, it happens inside the transaction, as
// it would after a BEGIN of its own.
func TestTxFirstStatementCarriesBegin(t *testing.T) {
	t.Parallel()
	// One connection, so that a statement described outside a transaction
	// is in the cache of the connection inside it.
	db, _ := openDB(t, "connection_count=1")
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE carried (id int PRIMARY KEY)")
	count := func() int {
		t.Helper()
		var n int
		if err := db.QueryRow("SELECT count(*) FROM carried").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	begin := func() *sql.Tx {
		t.Helper()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	// aborted checks that the transaction failed: the next statement is
	// refused and Commit rolls back.
	aborted := func(tx *sql.Tx) {
		t.Helper()
		if _, err := tx.Exec("INSERT INTO carried VALUES (100)"); pgCode(err) != "25P02" {
			t.Fatalf("statement after the failed one: %v, want SQLSTATE 25P02", err)
		}
		if err := tx.Commit(); !errors.Is(err, pgpurepy.ErrTxRolledBack) {
			t.Fatalf("Commit: %v, want ErrTxRolledBack", err)
		}
	}

	t.Run("argument that does not encode", func(t *testing.T) {
		// The statement is described already, so nothing is written: the
		// BEGIN waits for the next statement.
		mustExec(t, db, "SELECT $1::int4", 1)
		tx := begin()
		var ae *pgpurepy.ArgumentError
		if _, err := tx.Exec("SELECT $1::int4", struct{}{}); !errors.As(err, &ae) {
			t.Fatalf("struct argument: %v, want an ArgumentError", err)
		}
		mustExec(t, tx, "INSERT INTO carried VALUES ($1)", 1)
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 0 {
			t.Fatalf("%d rows after the rollback: the insert ran outside the transaction", n)
		}
	})

	t.Run("failed prepare", func(t *testing.T) {
		tx := begin()
		if _, err := tx.Prepare("SELEC 1"); pgCode(err) != "42601" {
			t.Fatalf("Prepare: %v, want SQLSTATE 42601", err)
		}
		aborted(tx)
	})

	t.Run("failed statement", func(t *testing.T) {
		tx := begin()
		if _, err := tx.Exec("SELECT 1 / $1::int4", 0); pgCode(err) != "22012" {
			t.Fatalf("division by zero: %v, want SQLSTATE 22012", err)
		}
		aborted(tx)
	})

	t.Run("several statements in one text", func(t *testing.T) {
		tx := begin()
		mustExec(t, tx, "INSERT INTO carried VALUES (5); INSERT INTO carried VALUES (6)")
		mustExec(t, tx, "INSERT INTO carried VALUES (7)")
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 0 {
			t.Fatalf("%d rows after the rollback", n)
		}
	})

	t.Run("isolation and access mode", func(t *testing.T) {
		tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		var level, ro string
		if err := tx.QueryRow("SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')").Scan(&level, &ro); err != nil {
			t.Fatal(err)
		}
		if level != "repeatable read" || ro != "on" {
			t.Fatalf("first statement saw %q, read only %q", level, ro)
		}
	})

	dbsqlCheckWorks(t, db)
}

// TestTxBeginRefused forces what a healthy server never does, a BEGIN that
// fails, with a BEGIN text the server rejects. The statement that carried
// it gets the server's error and nothing after it runs outside the
// transaction the holder believes open; the connection is replaced.
func TestTxBeginRefused(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	mustExec(t, db, "CREATE TABLE refused (id int)")
	ctx := context.Background()
	// The BEGIN is carried by the description of a new statement, then by
	// the execution of one described already.
	for i, described := range []bool{false, true} {
		err := x.Checkout(ctx, func(cn *pgpurepy.Conn) error {
			if described {
				if _, err := cn.Execute(ctx, "INSERT INTO refused VALUES ($1)", 0); err != nil {
					return err
				}
				if _, err := cn.Execute(ctx, "DELETE FROM refused"); err != nil {
					return err
				}
			}
			dtx, err := pgpurepy.BeginWith(ctx, cn, "BEGIN ISOLATION LEVEL NONSENSE")
			if err != nil {
				return err
			}
			if _, err := cn.Execute(ctx, "INSERT INTO refused VALUES ($1)", 1); pgCode(err) != "42601" {
				t.Errorf("described %v: statement carrying the refused BEGIN: %v, want SQLSTATE 42601", described, err)
			}
			if _, err := cn.Execute(ctx, "INSERT INTO refused VALUES ($1)", 2); err == nil || !strings.Contains(err.Error(), "did not begin") {
				t.Errorf("described %v: next statement: %v, want an error saying the transaction did not begin", described, err)
			}
			_ = dtx.Rollback()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.QueryRow("SELECT count(*) FROM refused").Scan(&n); err != nil || n != 0 {
			t.Fatalf("described %v: %d rows, %v: a statement ran outside the transaction", described, n, err)
		}
		if s := x.Stats(); s.ConnectionsClosed["broken"] != uint64(i+1) {
			t.Fatalf("described %v: the connection was not replaced: %+v", described, s)
		}
	}
}

// TestTxCancelledFirstStatement cancels the statement that carried the
// BEGIN: the caller gets its context's error, the transaction is failed as
// after any cancelled statement, and the connection is kept.
func TestTxCancelledFirstStatement(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	dbsqlCheckWorks(t, db)
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := tx.ExecContext(ctx, "SELECT pg_sleep(10)"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled first statement: %v, want context.DeadlineExceeded", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	dbsqlCheckWorks(t, db)
	if s := x.Stats(); s.ConnectionsOpened != 1 || s.CancelsKept != 1 {
		t.Fatalf("opened %d, cancels kept %d; want 1 and 1", s.ConnectionsOpened, s.CancelsKept)
	}
}

// TestTxCancelStress cancels the statement that carries the BEGIN at random
// moments, then rolls back. No row may survive: a BEGIN lost while its
// statement ran would leave that statement committed on its own.
func TestTxCancelStress(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	mustExec(t, db, "CREATE TABLE stressed (id int)")
	const iterations = 500
	for i := range iterations {
		tx, err := db.BeginTx(context.Background(), nil)
		if err != nil {
			t.Fatalf("iteration %d: BeginTx: %v", i, err)
		}
		d := time.Duration(rand.IntN(1500)) * time.Microsecond
		ctx, cancel := context.WithTimeout(context.Background(), d)
		_, _ = tx.ExecContext(ctx, "INSERT INTO stressed SELECT $1 FROM pg_sleep(0.001 * $2)", i, rand.IntN(3))
		cancel()
		if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
			t.Fatalf("iteration %d: Rollback: %v", i, err)
		}
		var got int
		if err := db.QueryRow("SELECT $1::int", i).Scan(&got); err != nil || got != i {
			t.Fatalf("iteration %d: statement after the rollback: %d, %v", i, got, err)
		}
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM stressed").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows survived their rollback (%v)", n, err)
	}
	s := x.Stats()
	t.Logf("%d transactions: %d cancels sent, %d kept, %d lost, %d connections opened",
		iterations, s.CancelsSent, s.CancelsKept, s.CancelsLost, s.ConnectionsOpened)
}
