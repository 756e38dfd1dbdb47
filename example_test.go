package pgpurepy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/converters"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// The examples need a server but get no testing.T, and sqltest exports the
// server of TestMain only through Shared(t). So they start one server of
// their own, once, the first time an example runs (sqltest.Start: local
// binaries, Docker, or PGPUREPY_TEST_DSN), with one database for all of
// them, and each example gets a fresh schema in it as its search_path
// (a schema is much cheaper than a database). The server is not closed by
// the examples: sqltest's watchdog stops it and removes its directory when
// the test process exits. On a server from PGPUREPY_TEST_DSN the database
// exampleDatabase stays, empty, and is reused by the next run.
var exampleServer struct {
	once sync.Once
	s    *sqltest.Server
	err  error
	n    atomic.Int64
}

const exampleDatabase = "pgpurepy_examples"

// exampleDSN creates a fresh schema and returns a DSN, a URL with a query
// string (so that "&key=value" can be appended), whose search_path is that
// schema, and a function that drops the schema.
func exampleDSN() (dsn string, drop func()) {
	exampleServer.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		s, err := sqltest.Start(ctx, sqltest.Options{})
		if err == nil {
			err = s.Exec(ctx, "", "CREATE DATABASE "+exampleDatabase)
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // it exists
				err = nil
			}
		}
		exampleServer.s, exampleServer.err = s, err
	})
	if exampleServer.err != nil {
		log.Fatal(exampleServer.err)
	}
	s := exampleServer.s
	schema := fmt.Sprintf("example_%d_%d", time.Now().UnixNano(), exampleServer.n.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Exec(ctx, exampleDatabase, "CREATE SCHEMA "+schema); err != nil {
		log.Fatal(err)
	}
	dsn = s.DSN(exampleDatabase)
	if strings.Contains(dsn, "?") {
		dsn += "&"
	} else {
		dsn += "?"
	}
	dsn += "search_path=" + schema
	return dsn, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Exec(ctx, exampleDatabase, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			log.Print(err)
		}
	}
}

// exampleDB opens a *sql.DB with a small pool on a fresh database, with a
// table of accounts, and returns it with its extension.
func exampleDB() (*sql.DB, *pgpurepy.Pool, func()) {
	dsn, drop := exampleDSN()
	db, err := sql.Open("pgpurepy", dsn+"&connection_count=2")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL, balance int NOT NULL CHECK (balance >= 0));
		INSERT INTO accounts VALUES (1, 'ann', 100), (2, 'bob', 50), (3, 'cid', 0)`); err != nil {
		log.Fatal(err)
	}
	ext, err := pgpurepy.Ext(db)
	if err != nil {
		log.Fatal(err)
	}
	return db, ext, func() { _ = db.Close(); drop() }
}

// Ext finds the extension of any *sql.DB opened with the pgpurepy driver,
// without a round trip: also the *sql.DB under sqlx (sqlxDB.DB) or gorm
// (gormDB.DB()).
func ExampleExt() {
	dsn, drop := exampleDSN()
	defer drop()

	db, err := sql.Open("pgpurepy", dsn+"&connection_count=4")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	ext, err := pgpurepy.Ext(db)
	if err != nil {
		log.Fatal(err) // pgpurepy.ErrNotPgpurepy for a DB of another driver
	}
	fmt.Println("max connections:", ext.MaxConnections())

	// The extension and database/sql share the pool and its connections.
	ctx := context.Background()
	if _, err := ext.Execute(ctx, "CREATE TABLE t (v int)"); err != nil {
		log.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		log.Fatal(err)
	}
	row, err := ext.FetchOne(ctx, "SELECT count(*) FROM t")
	if err != nil {
		log.Fatal(err)
	}
	var n int
	if err := row.Scan(&n); err != nil {
		log.Fatal(err)
	}
	fmt.Println("rows:", n)
	// Output:
	// max connections: 4
	// rows: 1
}

// Execute runs a statement on the next free connection and returns the
// number of rows it affected.
func ExamplePool_Execute() {
	_, ext, done := exampleDB()
	defer done()
	ctx := context.Background()

	n, err := ext.Execute(ctx, "UPDATE accounts SET balance = balance + $1 WHERE balance < $2", 10, 100)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("updated:", n)
	// Output: updated: 2
}

// Fetch returns all the rows of a result.
func ExamplePool_Fetch() {
	_, ext, done := exampleDB()
	defer done()

	rows, err := ext.Fetch(context.Background(), "SELECT id, owner FROM accounts WHERE balance > $1 ORDER BY id", 10)
	if err != nil {
		log.Fatal(err)
	}
	for _, row := range rows {
		var id int
		var owner string
		if err := row.Scan(&id, &owner); err != nil {
			log.Fatal(err)
		}
		fmt.Println(id, owner)
	}
	// Output:
	// 1 ann
	// 2 bob
}

// FetchOne returns the first row; when there is none its error satisfies
// errors.Is(err, sql.ErrNoRows).
func ExamplePool_FetchOne() {
	_, ext, done := exampleDB()
	defer done()
	ctx := context.Background()

	row, err := ext.FetchOne(ctx, "SELECT owner, balance FROM accounts WHERE id = $1", 1)
	if err != nil {
		log.Fatal(err)
	}
	owner, _ := row.Get("owner")
	balance, _ := row.Get("balance")
	fmt.Println(owner, balance)

	_, err = ext.FetchOne(ctx, "SELECT owner FROM accounts WHERE id = $1", 42)
	fmt.Println(errors.Is(err, sql.ErrNoRows))

	// More rows than one: the first is returned, the rest discarded.
	row, err = ext.FetchOne(ctx, "SELECT id FROM accounts ORDER BY id DESC")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(row.Values()...)
	// Output:
	// ann 100
	// true
	// 3
}

// FetchOneOrNone returns nil, and no error, when there is no row.
func ExamplePool_FetchOneOrNone() {
	_, ext, done := exampleDB()
	defer done()

	row, err := ext.FetchOneOrNone(context.Background(), "SELECT owner FROM accounts WHERE id = $1", 42)
	if err != nil {
		log.Fatal(err)
	}
	if row == nil {
		fmt.Println("no account 42")
	}
	// Output: no account 42
}

// Query streams the rows without buffering them; break (or the end of the
// loop) gives the connection back to the pool.
func ExamplePool_Query() {
	_, ext, done := exampleDB()
	defer done()

	// Breaking out of the loop cancels the rest of the result on the
	// server; the connection goes back to the pool once that is done, in
	// the background.
	for row, err := range ext.Query(context.Background(), "SELECT g FROM generate_series(1, 1000) g") {
		if err != nil {
			log.Fatal(err)
		}
		var g int
		if err := row.Scan(&g); err != nil {
			log.Fatal(err)
		}
		fmt.Println(g)
		if g == 3 {
			break
		}
	}
	// Output:
	// 1
	// 2
	// 3
}

// Checkout gives one connection to fn alone, so session state (SET,
// temporary tables) lasts for the whole of fn. The connection goes back to
// the pool when fn returns; a transaction fn left open is rolled back.
func ExamplePool_Checkout() {
	_, ext, done := exampleDB()
	defer done()
	ctx := context.Background()

	err := ext.Checkout(ctx, func(c *pgpurepy.Conn) error {
		if _, err := c.Execute(ctx, "CREATE TEMPORARY TABLE scratch AS SELECT id FROM accounts WHERE balance > 0"); err != nil {
			return err
		}
		row, err := c.FetchOne(ctx, "SELECT count(*) FROM scratch")
		if err != nil {
			return err
		}
		n, _ := row.Get("count")
		fmt.Println("in scratch:", n)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: in scratch: 2
}

// CheckoutInTransaction commits when fn returns nil, and rolls back when it
// returns an error, panics or its context ends.
func ExamplePool_CheckoutInTransaction() {
	_, ext, done := exampleDB()
	defer done()
	ctx := context.Background()

	transfer := func(from, to, amount int) error {
		return ext.CheckoutInTransaction(ctx, func(tx *pgpurepy.Conn) error {
			if _, err := tx.Execute(ctx, "UPDATE accounts SET balance = balance + $1 WHERE id = $2", amount, to); err != nil {
				return err
			}
			_, err := tx.Execute(ctx, "UPDATE accounts SET balance = balance - $1 WHERE id = $2", amount, from)
			return err // a CHECK violation rolls the credit back too
		})
	}
	fmt.Println(transfer(1, 3, 30))
	fmt.Println(transfer(2, 3, 500) != nil)

	rows, err := ext.Fetch(ctx, "SELECT owner, balance FROM accounts ORDER BY id")
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range rows {
		fmt.Println(r.Values()...)
	}
	// Output:
	// <nil>
	// true
	// ann 70
	// bob 50
	// cid 30
}

// A statement that fails inside the transaction makes the COMMIT fail, even
// if fn ignores the error: the server answers COMMIT with ROLLBACK, and
// CheckoutInTransaction returns ErrTxRolledBack.
func ExamplePool_CheckoutInTransaction_failedCommit() {
	_, ext, done := exampleDB()
	defer done()
	ctx := context.Background()

	err := ext.CheckoutInTransaction(ctx, func(tx *pgpurepy.Conn) error {
		_, _ = tx.Execute(ctx, "UPDATE accounts SET balance = 0 WHERE id = 1")
		_, _ = tx.Execute(ctx, "INSERT INTO accounts VALUES (1, 'dup', 0)") // fails, ignored
		return nil
	})
	fmt.Println(errors.Is(err, pgpurepy.ErrTxRolledBack))
	// Output: true
}

// CheckoutInTx takes the isolation level and access mode of sql.TxOptions.
func ExamplePool_CheckoutInTx() {
	_, ext, done := exampleDB()
	defer done()
	ctx := context.Background()

	opts := sql.TxOptions{Isolation: sql.LevelSerializable, ReadOnly: true}
	err := ext.CheckoutInTx(ctx, opts, func(tx *pgpurepy.Conn) error {
		row, err := tx.FetchOne(ctx, "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')")
		if err != nil {
			return err
		}
		fmt.Println(row.Values()...)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: serializable on
}

// Inside CheckoutInTransaction, Conn.Transaction is a savepoint: its error
// undoes only its own work.
func ExampleConn_Transaction() {
	_, ext, done := exampleDB()
	defer done()
	ctx := context.Background()

	err := ext.CheckoutInTransaction(ctx, func(tx *pgpurepy.Conn) error {
		if _, err := tx.Execute(ctx, "INSERT INTO accounts VALUES (4, 'dan', 10)"); err != nil {
			return err
		}
		err := tx.Transaction(ctx, func(sp *pgpurepy.Conn) error {
			if _, err := sp.Execute(ctx, "INSERT INTO accounts VALUES (5, 'eve', 10)"); err != nil {
				return err
			}
			_, err := sp.Execute(ctx, "INSERT INTO accounts VALUES (1, 'dup', 0)")
			return err // duplicate key: undoes eve, not dan
		})
		fmt.Println("savepoint failed:", err != nil)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	rows, err := ext.Fetch(ctx, "SELECT owner FROM accounts WHERE id > 3 ORDER BY id")
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range rows {
		fmt.Println(r.Values()...)
	}
	// Output:
	// savepoint failed: true
	// dan
}

// Stats is one snapshot of the pool for dashboards. Gauges change as the
// pool fills itself in the background; what a caller holds is exact.
func ExamplePool_Stats() {
	_, ext, done := exampleDB()
	defer done()
	ctx := context.Background()

	fmt.Println("max:", ext.Stats().MaxConnections)
	err := ext.Checkout(ctx, func(*pgpurepy.Conn) error {
		fmt.Println("in use while checked out:", ext.Stats().InUse)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	s := ext.Stats()
	fmt.Println("in use after:", s.InUse, "waiting:", s.WaitingTasks)
	// Output:
	// max: 2
	// in use while checked out: 1
	// in use after: 0 waiting: 0
}

// Account is a row of accounts; columns map to fields by db tag, or else by
// the lower-cased field name.
type Account struct {
	ID      int    `db:"id"`
	Owner   string `db:"owner"`
	Balance int64
}

// FetchStructs maps every row to a struct. A column without a field is an
// error, so that a typo is not silently dropped.
func ExampleFetchStructs() {
	_, ext, done := exampleDB()
	defer done()
	ctx := context.Background()

	accounts, err := pgpurepy.FetchStructs[Account](ctx, ext, "SELECT id, owner, balance FROM accounts ORDER BY id")
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range accounts {
		fmt.Printf("%+v\n", a)
	}

	_, err = pgpurepy.FetchStructs[Account](ctx, ext, "SELECT id, owner AS name FROM accounts")
	fmt.Println(err)
	// Output:
	// {ID:1 Owner:ann Balance:100}
	// {ID:2 Owner:bob Balance:50}
	// {ID:3 Owner:cid Balance:0}
	// pgpurepy: column "name" has no field in pgpurepy_test.Account (add a `db:"name"` tag)
}

// ScanStruct maps one row.
func ExampleScanStruct() {
	_, ext, done := exampleDB()
	defer done()

	row, err := ext.FetchOne(context.Background(), "SELECT id, owner FROM accounts WHERE id = 2")
	if err != nil {
		log.Fatal(err)
	}
	a, err := pgpurepy.ScanStruct[Account](row)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", a)
	// Output: {ID:2 Owner:bob Balance:0}
}

// Row.Scan converts like database/sql's Rows.Scan; Get reads by name.
func ExampleRow_Scan() {
	_, ext, done := exampleDB()
	defer done()

	row, err := ext.FetchOne(context.Background(), "SELECT 7::int2 AS small, 2.5::float8 AS f, NULL::text AS note, now() AS at")
	if err != nil {
		log.Fatal(err)
	}
	var small int8
	var f float32
	var note *string
	var at time.Time
	if err := row.Scan(&small, &f, &note, &at); err != nil {
		log.Fatal(err)
	}
	fmt.Println(small, f, note, !at.IsZero())
	fmt.Println(row.Columns())
	v, ok := row.Get("f")
	fmt.Println(v, ok)
	// Output:
	// 7 2.5 <nil> true
	// [small f note at]
	// 2.5 true
}

// OpenDB is sql.OpenDB on a new Connector, with database/sql limits that
// suit the pool.
func ExampleOpenDB() {
	dsn, drop := exampleDSN()
	defer drop()

	db, err := pgpurepy.OpenDB(dsn + "&connection_count=3")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	var v int
	if err := db.QueryRow("SELECT 6 * $1::int", 7).Scan(&v); err != nil {
		log.Fatal(err)
	}
	ext, err := pgpurepy.Ext(db)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v, ext.MaxConnections())
	// Output: 42 3
}

// Mood is the Go type of the PostgreSQL enum mood.
type Mood string

// AddConverterWithArray registers a converter for a type and its array type
// on every connection of the pool, open now or later: mood comes back as
// Mood and mood[] as []Mood, in both APIs, and goes out the same way.
func ExamplePool_AddConverterWithArray() {
	dsn, drop := exampleDSN()
	defer drop()
	db, err := sql.Open("pgpurepy", dsn+"&connection_count=2")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')"); err != nil {
		log.Fatal(err)
	}

	ext, err := pgpurepy.Ext(db)
	if err != nil {
		log.Fatal(err)
	}
	if err := ext.AddConverterWithArray(ctx, converters.Enum[Mood]("mood")); err != nil {
		log.Fatal(err)
	}

	row, err := ext.FetchOne(ctx, "SELECT $1::mood AS now, ARRAY['sad', 'ok']::mood[] AS history", Mood("happy"))
	if err != nil {
		log.Fatal(err)
	}
	var now Mood
	var history []Mood
	if err := row.Scan(&now, &history); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%T %v, %T %v\n", now, now, history, history)

	// The same through database/sql.
	if err := db.QueryRowContext(ctx, "SELECT $1::mood[]", []Mood{"ok", "happy"}).Scan(&history); err != nil {
		log.Fatal(err)
	}
	fmt.Println(history)
	// Output:
	// pgpurepy_test.Mood happy, []pgpurepy_test.Mood [sad ok]
	// [ok happy]
}

// examplePair starts a primary with a streaming standby for one example
// (sqltest.StartPair, from local binaries) and returns a keyword/value DSN
// that lists both, primary first, with extra appended, and a function
// that stops both.
func examplePair(extra string) (dsn string, stop func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pair, err := sqltest.StartPair(ctx, sqltest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	P, S := pair.Primary, pair.Standby
	dsn = fmt.Sprintf("host=%s,%s port=%d,%d user=postgres dbname=postgres sslmode=disable %s",
		P.Host(), S.Host(), P.Port(), S.Port(), extra)
	return dsn, func() {
		if err := pair.Close(); err != nil {
			log.Print(err)
		}
	}
}

// PreferStandby sends the autocommit reads made with its context to a
// standby of a multi-host DSN; writes and transactions stay on the
// primary, which target_session_attrs=read-write picks.
func ExamplePreferStandby() {
	dsn, stop := examplePair("target_session_attrs=read-write")
	defer stop()
	db, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	ro := pgpurepy.PreferStandby(ctx)

	var onStandby bool
	if err := db.QueryRowContext(ro, "SELECT pg_is_in_recovery()").Scan(&onStandby); err != nil {
		log.Fatal(err)
	}
	fmt.Println("marked read on a standby:", onStandby)
	if err := db.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&onStandby); err != nil {
		log.Fatal(err)
	}
	fmt.Println("unmarked read on a standby:", onStandby)

	// A transaction stays on the primary, whatever its context says.
	tx, err := db.BeginTx(ro, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := tx.QueryRowContext(ro, "SELECT pg_is_in_recovery()").Scan(&onStandby); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("marked read in a transaction on a standby:", onStandby)

	// A standby refuses writes; a write needs no mark.
	_, err = db.ExecContext(ro, "CREATE TABLE notes (body text)")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		fmt.Println("marked write:", pgErr.Code, pgErr.Message)
	}

	ext, err := pgpurepy.Ext(db)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("statements on a standby:", ext.Stats().StandbyStatements)
	// Output:
	// marked read on a standby: true
	// unmarked read on a standby: false
	// marked read in a transaction on a standby: false
	// marked write: 25006 cannot execute CREATE TABLE in a read-only transaction
	// statements on a standby: 2
}

// load_balance_hosts=random has each new connection try the hosts in a
// random order, so the connections of a pool spread over every host that
// target_session_attrs accepts; here any, so both servers serve reads.
// Without it every connection goes to the first host that accepts it.
func Example_loadBalanceHosts() {
	const n = 20
	dsn, stop := examplePair(fmt.Sprintf("target_session_attrs=any load_balance_hosts=random connection_count=%d", n))
	defer stop()
	db, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()

	// Hold n connections at once, so that each is a connection of its own.
	reached := map[bool]int{}
	var held []*sql.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range n {
		c, err := db.Conn(ctx)
		if err != nil {
			log.Fatal(err)
		}
		held = append(held, c)
		var onStandby bool
		if err := c.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&onStandby); err != nil {
			log.Fatal(err)
		}
		reached[onStandby]++
	}
	// All n on one server has a chance of 2 in 2^n.
	fmt.Println("connections on the primary:", reached[false] > 0)
	fmt.Println("connections on the standby:", reached[true] > 0)
	// Output:
	// connections on the primary: true
	// connections on the standby: true
}
