package pgpurepy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/converters"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// batchInts returns the first column of every row of a batch result, as
// int64s, and fails the test on any error.
func batchInts(t testing.TB, r pgpurepy.BatchResult) []int64 {
	t.Helper()
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	var out []int64
	for _, row := range r.Rows {
		v, ok := row.Values()[0].(int64)
		if !ok {
			t.Fatalf("first column %#v is not an int64", row.Values()[0])
		}
		out = append(out, v)
	}
	return out
}

// TestBatchResultsInOrder sends a batch of mixed statements, in each query
// mode and twice (first described, then known), and checks every result in
// its place: rows of a SELECT, INSERT ... RETURNING, UPDATE and DELETE
// counts, and a statement with pgx's per-statement options.
func TestBatchResultsInOrder(t *testing.T) {
	for _, mode := range []string{"auto", "prepare", "describe"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			db, _ := openDB(t, "query_mode="+mode, "connection_count=1")
			x := ext(t, db)
			ctx := context.Background()
			mustExec(t, db, "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, n int)")
			for round := range 2 {
				mustExec(t, db, "TRUNCATE items RESTART IDENTITY")
				b := &pgpurepy.Batch{}
				b.Queue("INSERT INTO items (name, n) VALUES ($1, $2) RETURNING id", "a", 1)
				b.Queue("INSERT INTO items (name, n) VALUES ($1, $2) RETURNING id", "b", 2)
				b.Queue("INSERT INTO items (name, n) SELECT 'g' || g, g FROM generate_series(3, $1::int) g", 5)
				sel := b.Queue("SELECT id, name, n FROM items WHERE n >= $1 ORDER BY id", 2)
				upd := b.Queue("UPDATE items SET n = n * 10 WHERE n > $1", 1)
				b.Queue("DELETE FROM items WHERE name = $1", "a")
				none := b.Queue("SELECT id FROM items WHERE n < 0")
				opt := b.Queue("SELECT count(*) FROM items", pgx.QueryExecModeSimpleProtocol)
				if b.Len() != 8 || sel != 3 || upd != 4 || none != 6 || opt != 7 {
					t.Fatalf("Len %d, indexes %d %d %d %d", b.Len(), sel, upd, none, opt)
				}
				var res []pgpurepy.BatchResult
				err := x.Checkout(ctx, func(c *pgpurepy.Conn) error {
					var err error
					res, err = c.SendBatch(ctx, b)
					if err != nil {
						return err
					}
					batchCheckIdle(t, c)
					// The batch's texts are named statements as the query
					// mode says (but the one whose option asks otherwise).
					row, err := c.FetchOne(ctx, `SELECT count(*) FROM pg_prepared_statements
						WHERE statement LIKE '%items%' AND statement !~ '^(TRUNCATE|CREATE)'`, pgx.QueryExecModeSimpleProtocol)
					if err != nil {
						return err
					}
					want := map[string]int64{"auto": 6, "prepare": 6, "describe": 0}[mode]
					if v, _ := row.Get("count"); v != want {
						return fmt.Errorf("%v named statements of the batch on the server, want %d", v, want)
					}
					return nil
				})
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if len(res) != b.Len() {
					t.Fatalf("%d results for %d statements", len(res), b.Len())
				}
				if got := batchInts(t, res[0]); len(got) != 1 || got[0] != 1 || res[0].RowsAffected != 1 {
					t.Fatalf("first RETURNING: %v, %d", got, res[0].RowsAffected)
				}
				if got := batchInts(t, res[1]); len(got) != 1 || got[0] != 2 {
					t.Fatalf("second RETURNING: %v", got)
				}
				if res[2].RowsAffected != 3 || res[2].Rows != nil || res[2].Err != nil {
					t.Fatalf("INSERT ... SELECT: %+v", res[2])
				}
				if got := batchInts(t, res[sel]); fmt.Sprint(got) != "[2 3 4 5]" || res[sel].RowsAffected != 4 {
					t.Fatalf("SELECT: %v, %d", got, res[sel].RowsAffected)
				}
				if v, _ := res[sel].Rows[0].Get("name"); v != "b" {
					t.Fatalf("SELECT's name column: %v", v)
				}
				if res[upd].RowsAffected != 4 || res[5].RowsAffected != 1 {
					t.Fatalf("UPDATE %d, DELETE %d", res[upd].RowsAffected, res[5].RowsAffected)
				}
				if res[none].Err != nil || res[none].Rows != nil || res[none].RowsAffected != 0 {
					t.Fatalf("empty SELECT: %+v", res[none])
				}
				if got := batchInts(t, res[opt]); fmt.Sprint(got) != "[4]" {
					t.Fatalf("count with an option: %v", got)
				}
			}
		})
	}
}

// batchCheckIdle checks, on the connection a batch ran on, that it is
// outside any transaction block (SAVEPOINT fails there with 25P01: a
// release would roll back what a batch left open, and hide it) and serves
// a statement.
func batchCheckIdle(t testing.TB, c *pgpurepy.Conn) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Execute(ctx, "SAVEPOINT idle_check"); pgCode(err) != "25P01" {
		t.Fatalf("SAVEPOINT after the batch: %v, want 25P01: the connection was left in a transaction", err)
	}
	row, err := c.FetchOne(ctx, "SELECT $1::int + 1 AS n", 1)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := row.Get("n"); v != int64(2) {
		t.Fatalf("SELECT after the batch: %v", v)
	}
}

// countingConn counts, on one client socket, the writes and the round
// trips: a round trip begins with a write that follows a read (or is the
// first), because the client waited for an answer in between.
type countingConn struct {
	net.Conn
	writes, trips *atomic.Int64
	readSince     atomic.Bool
	wrote         atomic.Bool
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	if c.readSince.Swap(false) || !c.wrote.Swap(true) {
		c.trips.Add(1)
	}
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.readSince.Store(true)
	}
	return n, err
}

// NetConn lets the pool's health check reach the socket.
func (c *countingConn) NetConn() net.Conn { return c.Conn }

// batchCountingDB opens a pool whose connections count their writes and
// round trips in the returned counters.
func batchCountingDB(t testing.TB, dsn string) (*sql.DB, *pgpurepy.Pool, *atomic.Int64, *atomic.Int64) {
	t.Helper()
	cfg, err := pgpurepy.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	writes, trips := &atomic.Int64{}, &atomic.Int64{}
	dialer := &net.Dialer{}
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: nc, writes: writes, trips: trips}, nil
	}
	c, err := pgpurepy.NewConnectorConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { _ = db.Close() })
	return db, ext(t, db), writes, trips
}

// batchOf20 returns a batch of 20 inserts that return their row, and
// checks its results.
func batchOf20() (*pgpurepy.Batch, func([]pgpurepy.BatchResult) error) {
	b := &pgpurepy.Batch{}
	for i := range 20 {
		b.Queue("INSERT INTO trips (v) VALUES ($1) RETURNING v * 2", i)
	}
	return b, func(res []pgpurepy.BatchResult) error {
		for i, r := range res {
			var v int
			if r.Err != nil || len(r.Rows) != 1 || r.Rows[0].Scan(&v) != nil || v != 2*i {
				return fmt.Errorf("statement %d: %+v", i, r)
			}
		}
		return nil
	}
}

// TestBatchOneWriteOneRoundTrip counts, on the client's socket, what a
// batch of 20 statements costs: one write and one round trip once its
// statements are known (two the first time, with their descriptions),
// where the same statements one by one cost 20 of each. Inside a
// transaction whose BEGIN has not been sent, the BEGIN goes in the same
// write, and every statement runs in that transaction.
func TestBatchOneWriteOneRoundTrip(t *testing.T) {
	t.Parallel()
	db, x, writes, trips := batchCountingDB(t, sqltest.DB(t)+"&connection_count=1&ping_after_idle=0")
	mustExec(t, db, "CREATE TABLE trips (v int)")
	ctx := context.Background()
	measure := func(fn func(c *pgpurepy.Conn) error) (w, rt int64) {
		t.Helper()
		err := x.Checkout(ctx, func(c *pgpurepy.Conn) error {
			w0, rt0 := writes.Load(), trips.Load()
			if err := fn(c); err != nil {
				return err
			}
			w, rt = writes.Load()-w0, trips.Load()-rt0
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return w, rt
	}
	send := func(c *pgpurepy.Conn) error {
		b, check := batchOf20()
		res, err := c.SendBatch(ctx, b)
		if err != nil {
			return err
		}
		return check(res)
	}
	if w, rt := measure(send); w != 2 || rt != 2 {
		t.Fatalf("first batch (statement described first): %d writes, %d round trips; want 2 and 2", w, rt)
	}
	if w, rt := measure(send); w != 1 || rt != 1 {
		t.Fatalf("batch of 20 known statements: %d writes, %d round trips; want 1 and 1", w, rt)
	}
	w, rt := measure(func(c *pgpurepy.Conn) error {
		for i := range 20 {
			if _, err := c.FetchOne(ctx, "INSERT INTO trips (v) VALUES ($1) RETURNING v * 2", i); err != nil {
				return err
			}
		}
		return nil
	})
	if w != 20 || rt != 20 {
		t.Fatalf("20 statements one by one: %d writes, %d round trips; want 20 and 20", w, rt)
	}

	// In a transaction: BEGIN, then the 20 statements, in one write.
	var txids map[string]bool
	err := x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
		w0, rt0 := writes.Load(), trips.Load()
		b := &pgpurepy.Batch{}
		for range 20 {
			b.Queue("SELECT txid_current()::text")
		}
		b.Queue("INSERT INTO trips (v) VALUES ($1) RETURNING v * 2", -1)
		if _, err := c.SendBatch(ctx, b); err != nil { // describes the new text
			return err
		}
		if w, rt := writes.Load()-w0, trips.Load()-rt0; w != 2 || rt != 2 {
			return fmt.Errorf("first batch in a transaction: %d writes, %d round trips; want 2 and 2", w, rt)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
		w0, rt0 := writes.Load(), trips.Load()
		b := &pgpurepy.Batch{}
		for range 20 {
			b.Queue("SELECT txid_current()::text")
		}
		res, err := c.SendBatch(ctx, b)
		if err != nil {
			return err
		}
		if w, rt := writes.Load()-w0, trips.Load()-rt0; w != 1 || rt != 1 {
			return fmt.Errorf("batch in a transaction, BEGIN included: %d writes, %d round trips; want 1 and 1", w, rt)
		}
		txids = map[string]bool{}
		for _, r := range res {
			if r.Err != nil {
				return r.Err
			}
			id, _ := r.Rows[0].Get("txid_current")
			txids[fmt.Sprint(id)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(txids) != 1 {
		t.Fatalf("the batch ran in %d transactions, want 1: %v", len(txids), txids)
	}
}

// TestBatchOneRoundTripThroughLatency sends the batch of 20 through a
// proxy that delays every chunk by 50ms each way, and compares it with the
// same statements one by one: the batch costs about one round trip, the
// sequence twenty. The comparison is relative (a quarter of the
// sequence's time), not a fixed bound, so that a slow machine does not
// fail it.
func TestBatchOneRoundTripThroughLatency(t *testing.T) {
	t.Parallel()
	px := resProxy(t)
	dsn := viaProxy(t, sqltest.DB(t), px)
	db, x := resOpen(t, dsn+"&connection_count=1&ping_after_idle=0")
	mustExec(t, db, "CREATE TABLE trips (v int)")
	ctx := context.Background()
	b, check := batchOf20()
	if _, err := x.SendBatch(ctx, b); err != nil { // describe it first
		t.Fatal(err)
	}
	px.SetLatency(50 * time.Millisecond)
	var batch, sequential time.Duration
	err := x.Checkout(ctx, func(c *pgpurepy.Conn) error {
		start := time.Now()
		res, err := c.SendBatch(ctx, b)
		batch = time.Since(start)
		if err != nil {
			return err
		}
		if err := check(res); err != nil {
			return err
		}
		start = time.Now()
		for i := range 20 {
			if _, err := c.FetchOne(ctx, "INSERT INTO trips (v) VALUES ($1) RETURNING v * 2", i); err != nil {
				return err
			}
		}
		sequential = time.Since(start)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("20 statements through a 50ms proxy: batch %v, one by one %v (%.1fx)", batch, sequential, float64(sequential)/float64(batch))
	if batch*4 > sequential {
		t.Fatalf("batch %v is not a fraction of one by one %v: it did not run in one round trip", batch, sequential)
	}
}

// TestBatchErrorOutsideTransaction fails one statement of a batch outside
// a transaction, at execution (a unique violation) and at description (a
// syntax error, a missing table): only that statement fails, the others
// run, and the connection is clean and kept.
func TestBatchErrorOutsideTransaction(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE u (id int PRIMARY KEY)")
	pid := backendPID(t, db)
	b := &pgpurepy.Batch{}
	b.Queue("INSERT INTO u VALUES ($1)", 1)
	b.Queue("INSERT INTO u VALUES ($1)", 1)          // duplicate
	b.Queue("INSERT INTO u VALUES ($1)", 3)          // runs
	b.Queue("SELEC 1")                               // syntax error, at description
	b.Queue("SELECT * FROM missing WHERE x = $1", 1) // missing table, at description
	b.Queue("SELECT count(*) FROM u")
	var res []pgpurepy.BatchResult
	var err error
	if cerr := x.Checkout(ctx, func(c *pgpurepy.Conn) error {
		res, err = c.SendBatch(ctx, b)
		batchCheckIdle(t, c)
		return nil
	}); cerr != nil {
		t.Fatal(cerr)
	}
	var be *pgpurepy.BatchError
	if !errors.As(err, &be) || be.Index != 1 || pgCode(err) != "23505" {
		t.Fatalf("batch error %v, want statement 1's unique violation", err)
	}
	if !strings.Contains(err.Error(), "batch statement 1") {
		t.Fatalf("error %q does not name the statement", err)
	}
	for i, want := range []string{"", "23505", "", "42601", "42P01", ""} {
		if got := pgCode(res[i].Err); got != want || (want == "" && res[i].Err != nil) {
			t.Fatalf("statement %d: %v, want SQLSTATE %q", i, res[i].Err, want)
		}
	}
	if got := batchInts(t, res[5]); fmt.Sprint(got) != "[2]" {
		t.Fatalf("rows after the failed statement: %v, want 2", got)
	}
	if backendPID(t, db) != pid {
		t.Fatal("the connection was replaced")
	}
}

// TestBatchErrorInTransaction fails statement k of a batch inside a
// transaction: the transaction is aborted, as PostgreSQL does, so the
// statements after k report 25P02 and the commit returns ErrTxRolledBack;
// the same after a BEGIN the caller sent itself on a checkout, and when
// the failing statement fails at its description, before any runs.
func TestBatchErrorInTransaction(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE u (id int PRIMARY KEY)")
	mustExec(t, db, "INSERT INTO u VALUES (0)")
	queue := func() *pgpurepy.Batch {
		b := &pgpurepy.Batch{}
		b.Queue("INSERT INTO u VALUES ($1)", 1)
		b.Queue("INSERT INTO u VALUES ($1)", 0) // duplicate
		b.Queue("INSERT INTO u VALUES ($1)", 2)
		b.Queue("SELECT count(*) FROM u")
		return b
	}
	check := func(res []pgpurepy.BatchResult, err error) {
		t.Helper()
		var be *pgpurepy.BatchError
		if !errors.As(err, &be) || be.Index != 1 || pgCode(err) != "23505" {
			t.Fatalf("batch error %v, want statement 1's unique violation", err)
		}
		for i, want := range []string{"", "23505", "25P02", "25P02"} {
			if got := pgCode(res[i].Err); got != want || (want == "" && res[i].Err != nil) {
				t.Fatalf("statement %d: %v, want SQLSTATE %q", i, res[i].Err, want)
			}
		}
	}
	err := x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
		check(c.SendBatch(ctx, queue()))
		return nil // commit: the server answers ROLLBACK
	})
	if !errors.Is(err, pgpurepy.ErrTxRolledBack) {
		t.Fatalf("commit after the failed batch: %v, want ErrTxRolledBack", err)
	}

	err = x.Checkout(ctx, func(c *pgpurepy.Conn) error {
		if _, err := c.Execute(ctx, "BEGIN"); err != nil {
			return err
		}
		check(c.SendBatch(ctx, queue()))
		if _, err := c.Execute(ctx, "COMMIT"); err != nil {
			return err
		}
		batchCheckIdle(t, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A statement that fails at its description aborts the transaction
	// before the batch runs: the error names it, the others report 25P02.
	err = x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
		b := &pgpurepy.Batch{}
		b.Queue("INSERT INTO u VALUES ($1)", 5)
		b.Queue("SELECT * FROM missing_in_tx")
		b.Queue("INSERT INTO u VALUES ($1)", 6)
		res, err := c.SendBatch(ctx, b)
		var be *pgpurepy.BatchError
		if !errors.As(err, &be) || be.Index != 1 || pgCode(err) != "42P01" {
			return fmt.Errorf("batch error %v, want statement 1's missing table", err)
		}
		if pgCode(res[0].Err) != "25P02" || pgCode(res[2].Err) != "25P02" {
			return fmt.Errorf("the others: %v, %v; want 25P02", res[0].Err, res[2].Err)
		}
		return nil
	})
	if !errors.Is(err, pgpurepy.ErrTxRolledBack) {
		t.Fatalf("commit: %v, want ErrTxRolledBack", err)
	}

	var n int
	if err := db.QueryRow("SELECT count(*) FROM u").Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows, %v: a failed transaction's rows were kept", n, err)
	}
}

// TestBatchCancelKeepsConnection ends the context of a batch while its
// second statement runs: SendBatch returns the context's error, the first
// statement keeps its result, the statement stops on the server, and the
// connection is kept, outside and inside a transaction.
func TestBatchCancelKeepsConnection(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	ctx := context.Background()
	b := &pgpurepy.Batch{}
	b.Queue("SELECT $1::int", 7)
	b.Queue("SELECT pg_sleep(30) /* batch-cancel */")
	b.Queue("SELECT $1::int", 8)
	pid := backendPID(t, db)
	before := x.Stats()
	for _, inTx := range []bool{false, true} {
		run := func(c *pgpurepy.Conn) error {
			cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			res, err := c.SendBatch(cctx, b)
			if took := time.Since(start); took > 10*time.Second {
				return fmt.Errorf("SendBatch returned after %v, not at the deadline", took)
			}
			var be *pgpurepy.BatchError
			if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &be) || be.Index != 1 {
				return fmt.Errorf("batch error %v, want the deadline at statement 1", err)
			}
			if !pgconn.Timeout(err) {
				return fmt.Errorf("pgconn.Timeout(%v) is false", err)
			}
			if got := batchInts(t, res[0]); fmt.Sprint(got) != "[7]" {
				return fmt.Errorf("statement 0: %v", got)
			}
			for _, i := range []int{1, 2} {
				if !errors.Is(res[i].Err, context.DeadlineExceeded) {
					return fmt.Errorf("statement %d: %v, want the deadline", i, res[i].Err)
				}
			}
			if !inTx {
				// The same holder goes on, once the connection recovered.
				batchCheckIdle(t, c)
			}
			return nil
		}
		var err error
		if inTx {
			// The cancelled statement failed the transaction: its commit
			// is a rollback.
			err = x.CheckoutInTransaction(ctx, run)
			if !errors.Is(err, pgpurepy.ErrTxRolledBack) {
				t.Fatalf("in a transaction: %v, want ErrTxRolledBack", err)
			}
		} else if err = x.Checkout(ctx, run); err != nil {
			t.Fatal(err)
		}
		waitNoActive(t, db, "batch-cancel")
		if got := backendPID(t, db); got != pid {
			t.Fatalf("in a transaction %v: backend pid changed from %d to %d: the connection was replaced", inTx, pid, got)
		}
	}
	after := x.Stats()
	if after.ConnectionsOpened != before.ConnectionsOpened || after.CancelsKept < before.CancelsKept+2 {
		t.Fatalf("cancels not kept: before %+v after %+v", before, after)
	}
}

// TestBatchCancelSilentServer ends the context of a batch while the
// network holds everything (a paused proxy): while the batch's new
// statements are being described, while known ones run, and while they
// run in a transaction whose BEGIN they carry. The call returns at the
// deadline with the context's error, and once the network flows again the
// connection recovers and serves the next batch. The transaction's
// inserts leave nothing behind: the transaction is rolled back, or, when
// the cancel reached the server as it ran the BEGIN, never began, and then
// the inserts after the first do not run outside it (the connection is
// then replaced, as after a single statement).
func TestBatchCancelSilentServer(t *testing.T) {
	t.Parallel()
	px := resProxy(t)
	db, x := resOpen(t, viaProxy(t, sqltest.DB(t), px)+"&connection_count=1&ping_after_idle=0")
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE silent (v int)")
	for _, phase := range []string{"describe", "execute", "transaction"} {
		b := &pgpurepy.Batch{}
		for i := range 5 {
			if phase == "transaction" {
				b.Queue("INSERT INTO silent VALUES ($1) RETURNING v + 100", i)
			} else {
				b.Queue("SELECT $1::int + 100 /* silent */", i)
			}
		}
		if phase != "describe" {
			if _, err := x.SendBatch(ctx, b); err != nil {
				t.Fatal(err)
			}
			mustExec(t, db, "DELETE FROM silent")
		}
		before := x.Stats()
		px.Pause()
		// The network flows again well after the deadline: the call must
		// have returned by then. In a transaction the rollback that
		// follows waits for the connection to recover, which needs it.
		var resumed atomic.Bool
		resume := time.AfterFunc(2*time.Second, func() {
			resumed.Store(true)
			px.Resume()
		})
		cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		var res []pgpurepy.BatchResult
		var err error
		var early bool
		send := func(c *pgpurepy.Conn) error {
			res, err = c.SendBatch(cctx, b)
			early = !resumed.Load()
			return err
		}
		if phase == "transaction" {
			if terr := x.CheckoutInTransaction(cctx, send); !errors.Is(terr, context.DeadlineExceeded) {
				t.Fatalf("transaction: %v", terr)
			}
		} else {
			_ = x.Checkout(ctx, send)
		}
		cancel()
		resume.Stop()
		px.Resume()
		if !errors.Is(err, context.DeadlineExceeded) || !early {
			t.Fatalf("%s: %v, returned before the network came back %v; want the deadline at once", phase, err, early)
		}
		switch phase {
		case "describe":
			if res != nil {
				t.Fatalf("describe: results %+v, want none: nothing ran", res)
			}
		default:
			var be *pgpurepy.BatchError
			if len(res) != 5 || !errors.As(err, &be) || be.Index != 0 {
				t.Fatalf("%s: %d results, %v", phase, len(res), err)
			}
		}
		res, err = x.SendBatch(ctx, b)
		if err != nil {
			t.Fatalf("%s: the next batch: %v", phase, err)
		}
		if got := batchInts(t, res[4]); fmt.Sprint(got) != "[104]" {
			t.Fatalf("%s: the next batch: %v", phase, got)
		}
		after := x.Stats()
		replaced := after.ConnectionsClosed["broken"] - before.ConnectionsClosed["broken"]
		if after.CancelsLost != before.CancelsLost || after.CancelsKept != before.CancelsKept+1 ||
			after.ConnectionsOpened != before.ConnectionsOpened+replaced || replaced > 0 && phase != "transaction" {
			t.Fatalf("%s: the connection was not kept: before %+v after %+v", phase, before, after)
		}
		if replaced > 0 {
			t.Logf("%s: the cancel reached the server as it ran the BEGIN: the transaction did not begin", phase)
		}
		if phase == "transaction" {
			var n int
			if err := db.QueryRow("SELECT count(*) FROM silent").Scan(&n); err != nil || n != 5 {
				t.Fatalf("%d rows, %v: want only the 5 of the batch after the cancelled transaction", n, err)
			}
		}
	}
}

// TestBatchBadArgumentSendsNothing queues an argument that does not encode,
// and one statement with too few arguments: SendBatch names the statement
// and the argument, returns no results, and writes nothing to the socket;
// no statement ran.
func TestBatchBadArgumentSendsNothing(t *testing.T) {
	t.Parallel()
	db, x, writes, _ := batchCountingDB(t, sqltest.DB(t)+"&connection_count=1&ping_after_idle=0")
	mustExec(t, db, "CREATE TABLE bad (id int)")
	ctx := context.Background()
	insert := "INSERT INTO bad VALUES ($1)"
	for range 2 { // cached from the second run on
		if _, err := x.Execute(ctx, insert, 0); err != nil {
			t.Fatal(err)
		}
	}
	type notAnInt struct{ X int }
	for _, tc := range []struct {
		name  string
		args  []any
		check func(error) bool
	}{
		{"does not encode", []any{notAnInt{1}}, func(err error) bool {
			var ae *pgpurepy.ArgumentError
			return errors.As(err, &ae) && ae.Position == 1 && strings.Contains(err.Error(), "argument $1")
		}},
		{"too few", nil, func(err error) bool { return strings.Contains(err.Error(), "1 parameters but 0 arguments") }},
	} {
		err := x.Checkout(ctx, func(c *pgpurepy.Conn) error {
			b := &pgpurepy.Batch{}
			b.Queue(insert, 1)
			b.Queue(insert, tc.args...)
			b.Queue(insert, 3)
			w0 := writes.Load()
			res, err := c.SendBatch(ctx, b)
			var be *pgpurepy.BatchError
			if res != nil || !errors.As(err, &be) || be.Index != 1 || !tc.check(err) || !strings.Contains(err.Error(), "batch statement 1") {
				return fmt.Errorf("%s: results %v, error %v; want none and statement 1's argument error", tc.name, res, err)
			}
			if w := writes.Load() - w0; w != 0 {
				return fmt.Errorf("%s: %d writes, want none", tc.name, w)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM bad WHERE id > 0").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows, %v: a statement of a batch with a bad argument ran", n, err)
	}
}

// batchMood is the Go type of the enum mood.
type batchMood string

// TestBatchConverters sends a registered enum, and a slice of it as an
// array, as batch arguments, and reads both back from the results.
func TestBatchConverters(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	x := ext(t, db)
	ctx := context.Background()
	mustExec(t, db, "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
	mustExec(t, db, "CREATE TABLE moods (id int, m mood)")
	if err := x.AddConverterWithArray(ctx, converters.Enum[batchMood]("mood")); err != nil {
		t.Fatal(err)
	}
	b := &pgpurepy.Batch{}
	b.Queue("INSERT INTO moods VALUES ($1, $2) RETURNING m", 1, batchMood("ok"))
	b.Queue("INSERT INTO moods SELECT g, $1 FROM generate_series(2, 3) g", batchMood("sad"))
	b.Queue("UPDATE moods SET m = 'happy' WHERE m = ANY($1)", []batchMood{"sad"})
	b.Queue("SELECT array_agg(m ORDER BY id), $1::mood FROM moods", batchMood("happy"))
	res, err := x.SendBatch(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if v := res[0].Rows[0].Values()[0]; v != batchMood("ok") {
		t.Fatalf("RETURNING m: %#v", v)
	}
	if res[1].RowsAffected != 2 || res[2].RowsAffected != 2 {
		t.Fatalf("insert %d, update %d", res[1].RowsAffected, res[2].RowsAffected)
	}
	var ms []batchMood
	var m batchMood
	if err := res[3].Rows[0].Scan(&ms, &m); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ms) != "[ok happy happy]" || m != "happy" {
		t.Fatalf("array %q, value %q", ms, m)
	}
}

// TestBatchPgbouncer runs batches through pgbouncer with the default DSN,
// concurrently, in transaction and session pooling: batches of mixed
// statements with a converter argument, batches inside transactions, and
// batches with a failing statement; pgbouncer's idle timeouts pass between
// rounds. Nothing fails but the statements meant to, and every result is
// its own statement's.
func TestBatchPgbouncer(t *testing.T) {
	for _, mode := range []string{"transaction", "session"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			dbName := resDBName(t, sqltest.DB(t))
			b := resPgbouncer(t, mode, map[string]string{
				"default_pool_size":   "3",
				"server_idle_timeout": "1",
				"client_idle_timeout": "2",
			})
			db, x := resOpen(t, b.DSN(dbName))
			ctx := context.Background()
			mustExec(t, db, "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
			mustExec(t, db, "CREATE TABLE moods (id int PRIMARY KEY, m mood)")
			if err := x.AddConverterWithArray(ctx, converters.Enum[batchMood]("mood")); err != nil {
				t.Fatal(err)
			}
			op := func(ctx context.Context, i int) error {
				bt := &pgpurepy.Batch{}
				bt.Queue("SELECT $1::int * 3", i)
				bt.Queue("INSERT INTO moods VALUES ($1, $2) RETURNING m", i, batchMood("ok"))
				bt.Queue("SELECT $1::text || '!'", fmt.Sprint(i))
				bt.Queue("UPDATE moods SET m = $1 WHERE id = $2", batchMood("happy"), i)
				bt.Queue("SELECT m FROM moods WHERE id = $1", i)
				failing := i%3 == 2
				if failing {
					bt.Queue("INSERT INTO moods VALUES ($1, 'sad')", i) // duplicate
				}
				bt.Queue("SELECT count(*) FROM moods WHERE id = $1", i)
				var res []pgpurepy.BatchResult
				var err error
				if i%2 == 1 {
					err = x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
						var err error
						res, err = c.SendBatch(ctx, bt)
						if failing {
							return errors.New("rolled back")
						}
						return err
					})
					if failing {
						if err == nil || pgCode(res[5].Err) != "23505" || pgCode(res[6].Err) != "25P02" {
							return fmt.Errorf("failing batch in a transaction: %v, %v, %v", err, res[5].Err, res[6].Err)
						}
						return nil
					}
				} else {
					res, err = x.SendBatch(ctx, bt)
				}
				if failing {
					var be *pgpurepy.BatchError
					if !errors.As(err, &be) || be.Index != 5 || pgCode(err) != "23505" {
						return fmt.Errorf("failing batch: %v", err)
					}
					res = append(res[:5], res[6])
				} else if err != nil {
					return err
				}
				got := fmt.Sprint(res[0].Rows[0].Values()[0], res[1].Rows[0].Values()[0], res[2].Rows[0].Values()[0],
					res[3].RowsAffected, res[4].Rows[0].Values()[0], res[5].Rows[0].Values()[0])
				if want := fmt.Sprint(3*i, batchMood("ok"), fmt.Sprint(i)+"!", 1, batchMood("happy"), 1); got != want {
					return fmt.Errorf("batch %d: got %s, want %s", i, got, want)
				}
				return nil
			}
			for round := range 2 {
				resRun(8, 160, func(ctx context.Context, i int) error { return op(ctx, round*1000+i) }).
					requireZero(t, fmt.Sprintf("round %d", round))
				if round == 0 {
					time.Sleep(2500 * time.Millisecond) // past pgbouncer's idle timeouts
				}
			}
			s := x.Stats()
			t.Logf("%s pooling: named statements %v, stale statements retried %d, connections opened %d, closed %v",
				mode, s.NamedStatements, s.StaleStatementRetries, s.ConnectionsOpened, s.ConnectionsClosed)
		})
	}
}

// TestBatchTracer checks that the Tracer is told of each statement of a
// batch, with its own command tag or error.
func TestBatchTracer(t *testing.T) {
	t.Parallel()
	cfg, err := pgpurepy.ParseConfig(sqltest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := &recordingTracer{}
	cfg.Tracer = tr
	c, err := pgpurepy.NewConnectorConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	b := &pgpurepy.Batch{}
	b.Queue("SELECT generate_series(1, $1::int)", 3)
	b.Queue("SELECT 1/0")
	if _, err := ext(t, db).SendBatch(context.Background(), b); pgCode(err) != "22012" {
		t.Fatalf("batch: %v, want division by zero", err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if fmt.Sprint(tr.starts) != "[SELECT generate_series(1, $1::int) SELECT 1/0]" || fmt.Sprint(tr.ends) != "[SELECT 3 ]" ||
		tr.errs[0] != nil || pgCode(tr.errs[1]) != "22012" || tr.lost != 0 {
		t.Fatalf("traced starts %q, ends %q, errors %v, lost %d", tr.starts, tr.ends, tr.errs, tr.lost)
	}
}

// TestBatchEmpty sends nothing for an empty or nil batch.
func TestBatchEmpty(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	x := ext(t, db)
	for _, b := range []*pgpurepy.Batch{nil, {}} {
		if res, err := x.SendBatch(context.Background(), b); res != nil || err != nil {
			t.Fatalf("empty batch: %v, %v", res, err)
		}
	}
}

// TestBatchBeginRefused forces what a healthy server never does, a BEGIN
// that fails, carried by a batch (by its descriptions, then by its
// statements): the first statement gets the server's error, none of the
// others runs outside the transaction the holder believes open, and the
// connection is replaced, as after a single statement. A BEGIN cancelled
// as it runs is the same case for the server.
func TestBatchBeginRefused(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE refused (id int)")
	insert := "INSERT INTO refused VALUES ($1)"
	for i, described := range []bool{false, true} {
		err := x.Checkout(ctx, func(c *pgpurepy.Conn) error {
			if described {
				if _, err := c.Execute(ctx, insert, 0); err != nil {
					return err
				}
				if _, err := c.Execute(ctx, "DELETE FROM refused"); err != nil {
					return err
				}
			}
			dtx, err := pgpurepy.BeginWith(ctx, c, "BEGIN ISOLATION LEVEL NONSENSE")
			if err != nil {
				return err
			}
			defer func() { _ = dtx.Rollback() }()
			b := &pgpurepy.Batch{}
			for i := range 3 {
				b.Queue(insert, i+1)
			}
			res, err := c.SendBatch(ctx, b)
			var be *pgpurepy.BatchError
			if !errors.As(err, &be) || be.Index != 0 || pgCode(err) != "42601" || pgCode(res[0].Err) != "42601" {
				return fmt.Errorf("described %v: %v, want the BEGIN's syntax error for statement 0", described, err)
			}
			for _, r := range res[1:] {
				if r.Err == nil || !strings.Contains(r.Err.Error(), "did not begin") {
					return fmt.Errorf("described %v: a later statement: %v, want an error saying the transaction did not begin", described, r.Err)
				}
			}
			if _, err := c.Execute(ctx, "SELECT 1"); err == nil || !strings.Contains(err.Error(), "did not begin") {
				return fmt.Errorf("described %v: next statement: %v, want an error saying the transaction did not begin", described, err)
			}
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

// TestBatchPgbouncerServerChanges makes a transaction pooler serve a
// batch's statements from another server connection than the one that
// described them: another client holds that one in a transaction. The
// batch must not rely on a statement name living on: it still succeeds.
func TestBatchPgbouncerServerChanges(t *testing.T) {
	t.Parallel()
	bouncer := resPgbouncer(t, "transaction", map[string]string{"default_pool_size": "2"})
	dsn := bouncer.DSN(resDBName(t, sqltest.DB(t)))
	_, x := resOpen(t, dsn+"&connection_count=1")
	other, _ := resOpen(t, dsn+"&connection_count=1")
	ctx := context.Background()
	b := &pgpurepy.Batch{}
	b.Queue("SELECT pg_backend_pid()")
	b.Queue("SELECT $1::int + 1", 1)
	res, err := x.SendBatch(ctx, b) // described, then run, on one server connection
	if err != nil {
		t.Fatal(err)
	}
	first := batchInts(t, res[0])[0]
	tx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	var held int64
	if err := tx.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&held); err != nil {
		t.Fatal(err)
	}
	if held != first {
		t.Skipf("pgbouncer gave the other client server %d, not %d, which ran the batch", held, first)
	}
	res, err = x.SendBatch(ctx, b)
	if err != nil {
		t.Fatalf("batch on another server connection: %v", err)
	}
	if now := batchInts(t, res[0])[0]; now == first {
		t.Fatalf("the batch ran on server %d again, which the other client holds", now)
	}
}

// BenchmarkBatch compares 20 statements run one by one on a checked-out
// connection with the same 20 in a batch, directly on the loopback and
// through a proxy that adds 1ms each way (a network between two hosts).
//
//	go test -run '^$' -bench Batch -benchtime 2s .
func BenchmarkBatch(b *testing.B) {
	const n = 20
	for _, latency := range []time.Duration{0, time.Millisecond} {
		dsn := sqltest.DB(b)
		if latency > 0 {
			px := resProxy(b)
			px.SetLatency(latency)
			dsn = viaProxy(b, dsn, px)
		}
		_, x := resOpen(b, dsn+"&connection_count=1&ping_after_idle=0")
		ctx := context.Background()
		batch := &pgpurepy.Batch{}
		for i := range n {
			batch.Queue("SELECT $1::int + 1", i)
		}
		b.Run(fmt.Sprintf("latency=%v/sequential", latency), func(b *testing.B) {
			err := x.Checkout(ctx, func(c *pgpurepy.Conn) error {
				for b.Loop() {
					for i := range n {
						if _, err := c.FetchOne(ctx, "SELECT $1::int + 1", i); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
		b.Run(fmt.Sprintf("latency=%v/batch", latency), func(b *testing.B) {
			err := x.Checkout(ctx, func(c *pgpurepy.Conn) error {
				for b.Loop() {
					if _, err := c.SendBatch(ctx, batch); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

// SendBatch sends several statements in one write and reads their
// results, in order, in one round trip. Outside a transaction each
// statement stands alone: one that fails does not stop the others.
func ExamplePool_SendBatch() {
	_, ext, done := exampleDB()
	defer done()
	ctx := context.Background()

	b := &pgpurepy.Batch{}
	b.Queue("UPDATE accounts SET balance = balance - $1 WHERE id = $2", 30, 1)
	b.Queue("UPDATE accounts SET balance = balance - $1 WHERE id = $2", 30, 3) // cid has 0
	b.Queue("INSERT INTO accounts VALUES ($1, $2, $3) RETURNING id", 4, "dan", 10)
	b.Queue("SELECT owner, balance FROM accounts ORDER BY id")
	results, err := ext.SendBatch(ctx, b)
	var be *pgpurepy.BatchError
	if errors.As(err, &be) {
		var pgErr *pgconn.PgError
		errors.As(err, &pgErr)
		fmt.Println("statement", be.Index, "failed with SQLSTATE", pgErr.Code)
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Println("updated:", results[0].RowsAffected)
	var id int
	if err := results[2].Rows[0].Scan(&id); err != nil {
		log.Fatal(err)
	}
	fmt.Println("inserted:", id)
	for _, row := range results[3].Rows {
		var owner string
		var balance int
		if err := row.Scan(&owner, &balance); err != nil {
			log.Fatal(err)
		}
		fmt.Println(owner, balance)
	}
	// Output:
	// statement 1 failed with SQLSTATE 23514
	// updated: 1
	// inserted: 4
	// ann 70
	// bob 50
	// cid 0
	// dan 10
}

// TestBatchDeferredConstraint fails a statement at the end of its own
// implicit transaction (a deferred foreign key, checked after the
// statement's CommandComplete): the error is that statement's, and the
// next statement runs.
func TestBatchDeferredConstraint(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	mustExec(t, db, "CREATE TABLE parent (id int PRIMARY KEY)")
	mustExec(t, db, "CREATE TABLE child (p int REFERENCES parent DEFERRABLE INITIALLY DEFERRED)")
	b := &pgpurepy.Batch{}
	b.Queue("INSERT INTO child VALUES ($1)", 1)
	b.Queue("INSERT INTO parent VALUES ($1)", 1)
	b.Queue("INSERT INTO child VALUES ($1)", 1)
	res, err := ext(t, db).SendBatch(context.Background(), b)
	var be *pgpurepy.BatchError
	if !errors.As(err, &be) || be.Index != 0 || pgCode(err) != "23503" {
		t.Fatalf("batch: %v, want statement 0's deferred foreign key violation", err)
	}
	if res[0].RowsAffected != 1 || res[1].Err != nil || res[2].Err != nil {
		t.Fatalf("results %+v", res)
	}
}

// TestBatchStaleDescription changes a table's column type between two
// batches. A named statement then fails with the server's error, once,
// and runs again described afresh; an unnamed one is described again by
// the server with each execution and decodes by what it says now.
func TestBatchStaleDescription(t *testing.T) {
	for _, mode := range []string{"prepare", "describe"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			db, _ := openDB(t, "query_mode="+mode, "connection_count=1")
			x := ext(t, db)
			ctx := context.Background()
			mustExec(t, db, "CREATE TABLE st (v int)")
			mustExec(t, db, "INSERT INTO st VALUES (1)")
			b := &pgpurepy.Batch{}
			b.Queue("SELECT * FROM st")
			b.Queue("SELECT 2")
			if _, err := x.SendBatch(ctx, b); err != nil {
				t.Fatal(err)
			}
			mustExec(t, db, "ALTER TABLE st ALTER COLUMN v TYPE text")
			res, err := x.SendBatch(ctx, b)
			if mode == "prepare" {
				if pgCode(err) != "0A000" || res[1].Err != nil {
					t.Fatalf("named statement after the change: %v, want 0A000 for it alone", err)
				}
				res, err = x.SendBatch(ctx, b)
			}
			if err != nil {
				t.Fatal(err)
			}
			if v := res[0].Rows[0].Values()[0]; v != "1" {
				t.Fatalf("value after the change: %#v, want the text \"1\"", v)
			}
		})
	}
}

// TestBatchContextDoneBeforeSend sends nothing for a context that already
// ended, and returns no results.
func TestBatchContextDoneBeforeSend(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	x := ext(t, db)
	b := &pgpurepy.Batch{}
	b.Queue("SELECT 1")
	if _, err := x.SendBatch(context.Background(), b); err != nil { // known
		t.Fatal(err)
	}
	err := x.Checkout(context.Background(), func(c *pgpurepy.Conn) error {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		res, err := c.SendBatch(ctx, b)
		if res != nil || !errors.Is(err, context.Canceled) {
			return fmt.Errorf("results %v, error %v; want none and the context's error", res, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
