package pgpurepy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// Regression tests for what broke under real libraries (issue 14): each
// failed before its fix.

// preparedCount counts the statements prepared on q's session, other than
// the counting query, which runs unnamed.
func preparedCount(t testing.TB, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) int {
	t.Helper()
	var n int
	if err := q.QueryRowContext(context.Background(), "SELECT count(*) FROM pg_prepared_statements", pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPgxQueryOptions passes pgx's per-statement options as first
// arguments, as gorm's postgres migrator does: every mode runs, the modes
// that leave nothing prepared on the server leave nothing, and the result
// format options change the wire format but not the values.
func TestPgxQueryOptions(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	modes := []struct {
		mode  pgx.QueryExecMode
		named bool
	}{
		{pgx.QueryExecModeCacheStatement, true},
		{pgx.QueryExecModeCacheDescribe, false},
		{pgx.QueryExecModeDescribeExec, false},
		{pgx.QueryExecModeExec, false},
		{pgx.QueryExecModeSimpleProtocol, false},
	}
	for i, m := range modes {
		before := preparedCount(t, c)
		var n int64
		q := fmt.Sprintf("SELECT $1::int8 + %d", i)
		if err := c.QueryRowContext(ctx, q, m.mode, int64(41)).Scan(&n); err != nil {
			t.Fatalf("%v: %v", m.mode, err)
		}
		if n != int64(41+i) {
			t.Fatalf("%v: got %d", m.mode, n)
		}
		if _, err := c.ExecContext(ctx, "SELECT $1::text /* exec "+q+" */", m.mode, "x"); err != nil {
			t.Fatalf("%v exec: %v", m.mode, err)
		}
		want := before
		if m.named {
			want += 2
		}
		if got := preparedCount(t, c); got != want {
			t.Fatalf("%v: %d statements prepared on the server, want %d", m.mode, got, want)
		}
	}

	// The extension takes them too.
	x := ext(t, db)
	row, err := x.FetchOne(ctx, "SELECT $1::int4 * 2", pgx.QueryExecModeSimpleProtocol, 21)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := row.Get("?column?"); v != int64(42) {
		t.Fatalf("extension: got %v", v)
	}

	// pgx.NamedArgs rewrites @names into $n.
	var sum int64
	if err := db.QueryRowContext(ctx, "SELECT @a::int8 + @b::int8", pgx.NamedArgs{"a": 40, "b": 2}).Scan(&sum); err != nil || sum != 42 {
		t.Fatalf("named args: %d, %v", sum, err)
	}
	if _, err := x.Execute(ctx, "SELECT @a::int8", pgx.NamedArgs{"a": 1}); err != nil {
		t.Fatalf("named args, extension: %v", err)
	}

	// Result formats: the same values in either format, for types whose
	// usual format is binary and text alike.
	const typed = "SELECT 1.5::numeric, 7::int4, 'x'::text, '2024-01-02 03:04:05+00'::timestamptz, '7 days'::interval, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid"
	for _, opt := range []any{
		pgx.QueryResultFormats{pgx.BinaryFormatCode},
		pgx.QueryResultFormats{pgx.TextFormatCode},
		pgx.QueryResultFormats{pgx.TextFormatCode, pgx.BinaryFormatCode, pgx.TextFormatCode, pgx.TextFormatCode, pgx.BinaryFormatCode, pgx.BinaryFormatCode},
		pgx.QueryResultFormatsByOID{pgtype.NumericOID: pgx.BinaryFormatCode, pgtype.TimestamptzOID: pgx.TextFormatCode},
	} {
		var (
			num, txt, ival, id string
			i4                 int64
			ts                 time.Time
		)
		if err := db.QueryRowContext(ctx, typed, opt).Scan(&num, &i4, &txt, &ts, &ival, &id); err != nil {
			t.Fatalf("%v: %v", opt, err)
		}
		// In binary, an interval comes back in pgtype's spelling, as it
		// does from pgx's stdlib.
		if num != "1.5" || i4 != 7 || txt != "x" || !ts.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) ||
			ival != "7 days" && ival != "7 day 00:00:00" || id != "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" {
			t.Fatalf("%v: got %q %d %q %v %q %q", opt, num, i4, txt, ts, ival, id)
		}
	}
	// The option applied to one call only: the cached description still
	// decodes the usual way.
	var num string
	if err := db.QueryRowContext(ctx, "SELECT 2.5::numeric").Scan(&num); err != nil || num != "2.5" {
		t.Fatalf("after options: %q, %v", num, err)
	}
}

// TestUnsignedTypesAtMaximum reads PostgreSQL's unsigned 32-bit types at
// their largest value, where a signed decoding turns negative.
func TestUnsignedTypesAtMaximum(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	x := ext(t, db)
	for _, typ := range []string{"oid", "xid", "cid", "regclass", "regtype", "regproc", "regprocedure", "regoper", "regoperator", "regnamespace", "regrole", "regconfig", "regdictionary", "regcollation"} {
		q := "SELECT '4294967295'::" + typ
		if typ != "oid" && typ != "xid" && typ != "cid" {
			// Their text is a name; an OID nothing has prints as a number.
			q = "SELECT 4294967295::oid::" + typ
		}
		var n int64
		if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil || n != math.MaxUint32 {
			t.Errorf("%s: %d, %v", typ, n, err)
		}
		var u uint32
		if err := db.QueryRowContext(ctx, q).Scan(&u); err != nil || u != math.MaxUint32 {
			t.Errorf("%s into uint32: %d, %v", typ, u, err)
		}
		row, err := x.FetchOne(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if err := row.Scan(&n); err != nil || n != math.MaxUint32 {
			t.Errorf("%s through the extension: %d, %v", typ, n, err)
		}
	}
	// As an argument, and in the binary format pgpurepy reads oids in.
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT $1::oid", int64(4000000000)).Scan(&n); err != nil || n != 4000000000 {
		t.Errorf("oid argument: %d, %v", n, err)
	}
	var big uint64
	if err := db.QueryRowContext(ctx, "SELECT '18446744073709551615'::xid8").Scan(&big); err != nil || big != math.MaxUint64 {
		t.Errorf("xid8: %d, %v", big, err)
	}
}

// TestColumnTypeMetadata checks precision, scale and length of declared
// and undeclared modifiers, as pgx's stdlib reports them.
func TestColumnTypeMetadata(t *testing.T) {
	db, _ := openDB(t)
	mustExec(t, db, `CREATE TABLE meta (
		n numeric, n102 numeric(10,2), n5 numeric(5),
		ts timestamp, ts3 timestamp(3), tz timestamptz(0), tm time(2), ttz timetz,
		iv interval, iv4 interval(4), ivr interval year to month,
		vc varchar, vc9 varchar(9), bp char(3), vb varbit, vb7 varbit(7), tx text)`)
	rows, err := db.Query("SELECT * FROM meta")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		t.Fatal(err)
	}
	type ps struct {
		p, s int64
		ok   bool
	}
	wantPS := map[string]ps{
		"n": {0, 0, false}, "n102": {10, 2, true}, "n5": {5, 0, true},
		"ts": {0, 6, true}, "ts3": {0, 3, true}, "tz": {0, 0, true}, "tm": {0, 2, true}, "ttz": {0, 6, true},
		"iv": {0, 6, true}, "iv4": {0, 4, true}, "ivr": {0, 6, true},
		"vc": {0, 0, false}, "tx": {0, 0, false},
	}
	type ln struct {
		n  int64
		ok bool
	}
	wantLen := map[string]ln{
		"vc": {math.MaxInt64, true}, "vc9": {9, true}, "bp": {3, true}, "vb": {math.MaxInt64, true}, "vb7": {7, true},
		"tx": {math.MaxInt64, true}, "n": {0, false},
	}
	for _, ct := range cts {
		if w, ok := wantPS[ct.Name()]; ok {
			p, s, got := ct.DecimalSize()
			if (ps{p, s, got}) != w {
				t.Errorf("%s: DecimalSize %d, %d, %v; want %+v", ct.Name(), p, s, got, w)
			}
		}
		if w, ok := wantLen[ct.Name()]; ok {
			n, got := ct.Length()
			if (ln{n, got}) != w {
				t.Errorf("%s: Length %d, %v; want %+v", ct.Name(), n, got, w)
			}
		}
	}
}

// TestColumnsAreTheCallers changes the names Columns returned and checks
// that later executions of the statement still see the right ones.
func TestColumnsAreTheCallers(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	ctx := context.Background()
	const q = "SELECT 1 AS a, 2 AS b"
	for range 2 {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cols, []string{"a", "b"}) {
			t.Fatalf("columns %q", cols)
		}
		cols[0] = "changed"
		again, _ := rows.Columns()
		if again[0] != "a" {
			t.Fatalf("a second Columns call sees the first one's change: %q", again)
		}
		_ = rows.Close()
	}
	x := ext(t, db)
	row, err := x.FetchOne(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	row.Columns()[1] = "changed"
	row, err = x.FetchOne(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := row.Get("b"); !ok || v != int64(2) || row.Columns()[1] != "b" {
		t.Fatalf("extension columns changed: %q", row.Columns())
	}
}

// TestStmtCloseDeallocates prepares and closes statements, through a
// *sql.Conn and through the pool, and counts what stays prepared on the
// server.
func TestStmtCloseDeallocates(t *testing.T) {
	ctx := context.Background()
	t.Run("conn", func(t *testing.T) {
		db, _ := openDB(t)
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		base := preparedCount(t, c)
		for i := range 20 {
			st, err := c.PrepareContext(ctx, fmt.Sprintf("SELECT %d", i))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.ExecContext(ctx); err != nil {
				t.Fatal(err)
			}
			_ = st.Close()
		}
		if got := preparedCount(t, c); got != base {
			t.Fatalf("%d statements left prepared, want %d", got, base)
		}
		// Two statements of one text share it; the last close frees it.
		a, _ := c.PrepareContext(ctx, "SELECT 'shared'")
		b, _ := c.PrepareContext(ctx, "SELECT 'shared'")
		_ = a.Close()
		if got := preparedCount(t, c); got != base+1 {
			t.Fatalf("after the first of two closes: %d, want %d", got, base+1)
		}
		if _, err := b.ExecContext(ctx); err != nil {
			t.Fatal(err)
		}
		_ = b.Close()
		if got := preparedCount(t, c); got != base {
			t.Fatalf("after the last close: %d, want %d", got, base)
		}
		// A statement the cache holds for unprepared calls (from its
		// second run) stays.
		for range 2 {
			if _, err := c.ExecContext(ctx, "SELECT 'cached'"); err != nil {
				t.Fatal(err)
			}
		}
		st, _ := c.PrepareContext(ctx, "SELECT 'cached'")
		_ = st.Close()
		if got := preparedCount(t, c); got != base+1 {
			t.Fatalf("cached statement: %d, want %d", got, base+1)
		}
	})
	t.Run("pool", func(t *testing.T) {
		// db.Prepare closes its statements while database/sql has parked
		// the connection: the session's next statement frees them.
		db, _ := openDB(t, "connection_count=1")
		base := preparedCount(t, db)
		for i := range 20 {
			st, err := db.PrepareContext(ctx, fmt.Sprintf("SELECT %d", i))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.ExecContext(ctx); err != nil {
				t.Fatal(err)
			}
			_ = st.Close()
		}
		if got := preparedCount(t, db); got != base {
			t.Fatalf("%d statements left prepared, want %d", got, base)
		}
	})
	t.Run("cache bound", func(t *testing.T) {
		db, _ := openDB(t, "connection_count=1", "statement_cache_capacity=3")
		for i := range 10 {
			for range 2 { // cached from the second run on
				if _, err := db.ExecContext(ctx, fmt.Sprintf("SELECT %d", i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := preparedCount(t, db); got != 3 {
			t.Fatalf("%d statements prepared with a cache of 3", got)
		}
	})
}

// TestEarlyCloseKeepsTransaction closes results with many unread rows
// inside transactions, in every way database/sql and the extension allow:
// the transaction goes on and commits.
func TestEarlyCloseKeepsTransaction(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE kept (v int)")
	const many = "SELECT g FROM generate_series(1, 100000) g"
	committed := func(t *testing.T, want int) {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM kept").Scan(&n); err != nil || n != want {
			t.Fatalf("%d rows committed (%v), want %d", n, err, want)
		}
	}
	inTx := func(t *testing.T, read func(tx *sql.Tx) error) {
		t.Helper()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := read(tx); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO kept VALUES (1)"); err != nil {
			t.Fatalf("statement after the early close: %v", err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	inTx(t, func(tx *sql.Tx) error {
		var v int
		return tx.QueryRowContext(ctx, many).Scan(&v)
	})
	inTx(t, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, many)
		if err != nil {
			return err
		}
		for rows.Next() {
			break
		}
		return rows.Close()
	})
	committed(t, 2)

	// Commit with the rows still open: database/sql closes them first.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO kept VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.QueryContext(ctx, many)
	if err != nil {
		t.Fatal(err)
	}
	rows.Next()
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit with rows open: %v", err)
	}
	committed(t, 3)

	x := ext(t, db)
	err = x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
		if _, err := c.FetchOne(ctx, many); err != nil {
			return err
		}
		for _, err := range c.Query(ctx, many) {
			if err != nil {
				return err
			}
			break
		}
		_, err := c.Execute(ctx, "INSERT INTO kept VALUES (1)")
		return err
	})
	if err != nil {
		t.Fatalf("extension: %v", err)
	}
	committed(t, 4)
}

// TestEarlyCloseReportsAndKeepsWork reads the first row of long results
// outside a transaction: an error later in the result is reported, and a
// statement whose first row was enough for the caller still did all its
// work.
func TestEarlyCloseReportsAndKeepsWork(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	x := ext(t, db)

	var v int
	err := db.QueryRowContext(ctx, "SELECT 1/(g - 150000) FROM generate_series(1, 200000) g").Scan(&v)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Fatalf("QueryRow over a division by zero at row 150000: %v", err)
	}
	if _, err := x.FetchOne(ctx, "SELECT 1/(g - 150000) FROM generate_series(1, 200000) g"); pgCode(err) != "22012" {
		t.Fatalf("FetchOne over a division by zero at row 150000: %v", err)
	}

	mustExec(t, db, "CREATE TABLE returned (g int)")
	if err := db.QueryRowContext(ctx, "INSERT INTO returned SELECT g FROM generate_series(1, 100000) g RETURNING g").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if _, err := x.FetchOne(ctx, "INSERT INTO returned SELECT g FROM generate_series(1, 100000) g RETURNING g"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM returned").Scan(&n); err != nil || n != 200000 {
		t.Fatalf("INSERT ... RETURNING read for its first row inserted %d rows (%v), want 200000", n, err)
	}
}

// TestCheckoutKeepsConnectionAfterFailedRollback makes a savepoint's and a
// transaction's rollback time out inside a Checkout: the callback still
// holds the same connection afterwards, never another one from the pool.
func TestCheckoutKeepsConnectionAfterFailedRollback(t *testing.T) {
	px := resProxy(t)
	db, x := resOpen(t, viaProxy(t, sqltest.DB(t), px)+"&connection_count=2&cancel_grace=150ms")
	ctx := context.Background()
	resWarm(t, db, x)
	failed := errors.New("fn failed")
	err := x.Checkout(ctx, func(c *pgpurepy.Conn) error {
		pid := func() (any, error) {
			row, err := c.FetchOne(ctx, "SELECT pg_backend_pid()")
			if err != nil {
				return nil, err
			}
			v, _ := row.Get("pg_backend_pid")
			return v, nil
		}
		first, err := pid()
		if err != nil {
			return err
		}
		err = c.Transaction(ctx, func(c *pgpurepy.Conn) error {
			if _, err := c.Execute(ctx, "SELECT 1"); err != nil {
				return err
			}
			// Every round trip now outlasts the cancel grace, so the
			// ROLLBACK that follows fails.
			px.SetLatency(200 * time.Millisecond)
			return failed
		})
		if !errors.Is(err, failed) {
			return fmt.Errorf("transaction: %w", err)
		}
		px.SetLatency(0)
		// An error is fine (the connection may be lost); another
		// connection is not.
		if then, err := pid(); err == nil && then != first {
			return fmt.Errorf("the checkout ran on backend %v, then on %v", first, then)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestNullabilityLookupCancelled cancels statements while the driver reads
// the NOT NULL flags of a table it has not seen, through a proxy that
// makes every round trip slow: one recovery per cancel (two would read one
// socket at once, which -race and the protocol both catch), the connection
// kept, and no statement left prepared that nothing uses.
func TestNullabilityLookupCancelled(t *testing.T) {
	px := resProxy(t)
	dsn := viaProxy(t, sqltest.DB(t), px) + "&connection_count=1&ping_after_idle=0"
	db, x := resOpen(t, dsn)
	ctx := context.Background()
	resWarm(t, db, x)
	const n = 12
	for i := range n {
		mustExec(t, db, fmt.Sprintf("CREATE TABLE nl%d (id int NOT NULL)", i))
	}
	px.SetLatency(20 * time.Millisecond)
	// A Prepare takes one round trip (about 40ms), the lookup a second:
	// deadlines between them land the cancel in the lookup. The
	// statements are named from their first run (a text's first run is
	// otherwise unnamed), so that one left behind would show.
	named := pgx.QueryExecModeCacheStatement
	for i := range n {
		d := 45*time.Millisecond + time.Duration(i)*3*time.Millisecond
		cctx, cancel := context.WithTimeout(ctx, d)
		rows, err := db.QueryContext(cctx, fmt.Sprintf("SELECT id FROM nl%d", i), named)
		if err == nil {
			_ = rows.Close()
		}
		cancel()
	}
	px.SetLatency(0)
	before := x.Stats()
	var got int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT id FROM nl%'").Scan(&got); err != nil {
		t.Fatal(err)
	}
	// Whatever is prepared is in the cache: every table statement that
	// completed its description. One more run of each must prepare none.
	for i := range n {
		rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT id FROM nl%d", i), named)
		if err != nil {
			t.Fatal(err)
		}
		_ = rows.Close()
	}
	var after int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT id FROM nl%'").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != n {
		rows, _ := db.QueryContext(ctx, "SELECT name, statement FROM pg_prepared_statements")
		for rows.Next() {
			var a, b string
			_ = rows.Scan(&a, &b)
			t.Log(a, b)
		}
		rows.Close()
		t.Fatalf("%d table statements prepared after running each once more, want %d (before: %d)", after, n, got)
	}
	s := x.Stats()
	if s.ConnectionsOpened != before.ConnectionsOpened || s.CancelsLost != 0 {
		t.Fatalf("connection replaced: %+v", s)
	}
}

// TestLargeValueReleasesBuffers sends and reads a 32 MB value and checks
// that the session does not keep buffers of its size afterwards.
func TestLargeValueReleasesBuffers(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	ctx := context.Background()
	const size = 32 << 20
	heap := func() uint64 {
		// Twice: pooled buffers survive one collection.
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var small []byte
	if err := db.QueryRowContext(ctx, "SELECT $1::bytea", []byte("x")).Scan(&small); err != nil {
		t.Fatal(err)
	}
	before := heap()
	big := make([]byte, size)
	var back []byte
	if err := db.QueryRowContext(ctx, "SELECT $1::bytea", big).Scan(&back); err != nil {
		t.Fatal(err)
	}
	if len(back) != size {
		t.Fatalf("read %d bytes", len(back))
	}
	big, back = nil, nil
	_, _ = big, back
	// pgx's reader keeps the last message's buffer until its next read.
	if err := db.QueryRowContext(ctx, "SELECT $1::bytea", []byte("x")).Scan(&small); err != nil {
		t.Fatal(err)
	}
	if grown := int64(heap()) - int64(before); grown > size/2 {
		t.Fatalf("heap grew by %d MB after a %d MB round trip", grown>>20, size>>20)
	}
}

// TestStaleStatementRetryTranslated changes a cached statement's result
// type under lc_messages in German, in both query modes: the retry must not
// depend on the English text of the error.
func TestStaleStatementRetryTranslated(t *testing.T) {
	for _, mode := range []string{pgpurepy.QueryModePrepare, pgpurepy.QueryModeDescribe} {
		t.Run(mode, func(t *testing.T) {
			db, _ := openDB(t, "connection_count=1", "query_mode="+mode)
			ctx := context.Background()
			if _, err := db.ExecContext(ctx, "SET lc_messages TO 'de_DE.UTF-8'"); err != nil {
				t.Skipf("the server has no German locale (.ci/run makes one): %v", err)
			}
			_, err := db.ExecContext(ctx, "SELECT 1/0")
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || !strings.Contains(pgErr.Message, "Division") {
				t.Skipf("messages are not translated: %v", err)
			}
			// Two columns, then three: in describe mode the cached two
			// result formats no longer fit (one format would fit any).
			mustExec(t, db, "CREATE TABLE stale (a int, c int)")
			mustExec(t, db, "INSERT INTO stale VALUES (1, 2)")
			q := "SELECT * FROM stale"
			var a, c int
			if err := db.QueryRowContext(ctx, q).Scan(&a, &c); err != nil {
				t.Fatal(err)
			}
			mustExec(t, db, "ALTER TABLE stale ADD COLUMN b text DEFAULT 'x'")
			var b string
			if err := db.QueryRowContext(ctx, q).Scan(&a, &c, &b); err != nil || b != "x" {
				t.Fatalf("after ALTER TABLE: %q, %v", b, err)
			}
			mustExec(t, db, "ALTER TABLE stale ALTER COLUMN b DROP DEFAULT, ALTER COLUMN b TYPE int USING 7")
			var bi int
			if err := db.QueryRowContext(ctx, q).Scan(&a, &c, &bi); err != nil || bi != 7 {
				t.Fatalf("after a type change: %d, %v", bi, err)
			}
		})
	}
}

// TestNoRetryAfterStatementSent cuts the connection while the server runs
// a statement with an effect outside any transaction (nextval): the error
// must not send database/sql retrying it, or the sequence would advance
// more than once.
func TestNoRetryAfterStatementSent(t *testing.T) {
	px := resProxy(t)
	dsn := sqltest.DB(t)
	direct, _ := resOpen(t, dsn)
	mustExec(t, direct, "CREATE SEQUENCE once")
	db, x := resOpen(t, viaProxy(t, dsn, px)+"&connection_count=1")
	resWarm(t, db, x)
	var wg sync.WaitGroup
	wg.Add(1)
	var err error
	go func() {
		defer wg.Done()
		_, err = db.ExecContext(context.Background(), "SELECT nextval('once'), pg_sleep(0.5) /* cut-me */")
	}()
	resPoll(t, "the statement running", func() (bool, string) {
		var n int
		qerr := direct.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%cut-me%' AND pid <> pg_backend_pid()").Scan(&n)
		return qerr == nil && n == 1, fmt.Sprint(n, qerr)
	})
	px.Cut()
	wg.Wait()
	if err == nil {
		t.Fatal("statement on a cut connection succeeded")
	}
	waitNoActive(t, direct, "cut-me")
	var calls int64
	if err := direct.QueryRow("SELECT last_value FROM once").Scan(&calls); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("the statement ran %d times: the error (%v) made database/sql retry it", calls, err)
	}
}

// TestPasswordNeedsSASLprep logs in with passwords that SASLprep changes,
// which the server applied when it stored their SCRAM secrets; and with
// the same passwords stored as md5, which takes them as they are.
func TestPasswordNeedsSASLprep(t *testing.T) {
	srv := sqltest.Shared(t)
	ctx := context.Background()
	dsn := sqltest.DB(t)
	admin, _ := resOpen(t, dsn)
	passwords := []string{
		"soft\u00ADhyphen",  // mapped to nothing
		"\uFF21\uFF22c",     // full-width letters, NFKC makes them ASCII
		"\uFB01le",          // the ligature fi
		"non\u00A0breaking", // a non-ASCII space
		"caf\u0065\u0301",   // a combining accent
	}
	id := secRandom(t, "sasl")
	var lines []string
	for _, method := range []string{"scram-sha-256", "md5"} {
		lines = append(lines, fmt.Sprintf("host all %s_%s 127.0.0.1/32 %s", id, strings.ReplaceAll(method, "-", ""), method))
	}
	if err := srv.AppendHBA(true, lines...); err != nil {
		t.Skipf("needs a server from local binaries: %v", err)
	}
	if err := srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"scram-sha-256", "md5"} {
		role := id + "_" + strings.ReplaceAll(method, "-", "")
		for i, pw := range passwords {
			mustExec(t, admin, fmt.Sprintf("SET password_encryption = '%s'", method))
			if i == 0 {
				mustExec(t, admin, fmt.Sprintf("CREATE ROLE %s LOGIN", role))
				t.Cleanup(func() { _, _ = admin.Exec("DROP ROLE " + role) })
			}
			mustExec(t, admin, fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", role, pw))
			u := secWithPassword(t, dsn, pw)
			u = strings.Replace(u, "//postgres:", "//"+role+":", 1)
			db, err := sql.Open("pgpurepy", u)
			if err != nil {
				t.Fatal(err)
			}
			var who string
			err = db.QueryRowContext(ctx, "SELECT current_user").Scan(&who)
			_ = db.Close()
			if err != nil || who != role {
				t.Errorf("%s password %+q: %q, %v", method, pw, who, err)
			}
		}
	}
}

// TestDeadlineIsPgconnTimeout checks that a statement cancelled by its
// deadline satisfies pgconn.Timeout, as with pgx, and one cancelled by
// cancel does not; both wrap their context's error.
func TestDeadlineIsPgconnTimeout(t *testing.T) {
	db, _ := openDB(t)
	x := ext(t, db)
	st, err := db.Prepare("SELECT pg_sleep($1::float8)")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	calls := map[string]func(ctx context.Context) error{
		"exec": func(ctx context.Context) error {
			_, err := db.ExecContext(ctx, "SELECT pg_sleep(5)")
			return err
		},
		"query": func(ctx context.Context) error {
			var v any
			return db.QueryRowContext(ctx, "SELECT pg_sleep(5)").Scan(&v)
		},
		"prepared": func(ctx context.Context) error {
			_, err := st.ExecContext(ctx, 5.0)
			return err
		},
		"extension": func(ctx context.Context) error {
			_, err := x.Execute(ctx, "SELECT pg_sleep(5)")
			return err
		},
	}
	for name, call := range calls {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		err := call(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || !pgconn.Timeout(err) {
			t.Errorf("%s after its deadline: %v (pgconn.Timeout %v)", name, err, pgconn.Timeout(err))
		}
		ctx, cancel = context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		err = call(ctx)
		if !errors.Is(err, context.Canceled) || pgconn.Timeout(err) {
			t.Errorf("%s cancelled: %v (pgconn.Timeout %v)", name, err, pgconn.Timeout(err))
		}
	}
}

// TestTempTableSurvivesPoolFill runs what pgx's stdlib suite does in
// TestConnQueryRowConstraintErrors: a temporary table made by one db.Exec
// and used by the next, on a new *sql.DB. The pool opens its other
// connections in the background after the first statement; the next
// statement must still find the connection that statement released (pgx's
// stdlib and lib/pq do, through database/sql's own most-recent-first idle
// list), not one that opened since.
func TestTempTableSurvivesPoolFill(t *testing.T) {
	_, dsn := openDB(t)
	for i := range 3 {
		db, x := resOpen(t, dsn+"&connection_count=5")
		mustExec(t, db, "CREATE TEMPORARY TABLE fill_t (a int)")
		resWaitFull(t, x)
		if _, err := db.Exec("INSERT INTO fill_t VALUES (1)"); err != nil {
			t.Fatalf("round %d: the statement after CREATE TEMPORARY TABLE: %v", i, err)
		}
		_ = db.Close()
	}
}
