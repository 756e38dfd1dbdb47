package pgpurepy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// Tests of the database/sql face on the real server.

func TestColumnTypes(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	mustExec(t, db, `CREATE TABLE ct (
		i4 int4, i8 int8, b bool, f8 float8, n numeric(10,2), nn numeric, t text, v varchar(10), vv varchar,
		c char(3), ba bytea, ts timestamptz, d date, j jsonb, u uuid, a int4[])`)
	type col struct {
		name     string
		dbType   string
		scanType reflect.Type
		length   int64 // -1: ok is false
		prec     int64 // -1: ok is false
		scale    int64
	}
	want := []col{
		{"i4", "INT4", reflect.TypeFor[int32](), -1, -1, 0},
		{"i8", "INT8", reflect.TypeFor[int64](), -1, -1, 0},
		{"b", "BOOL", reflect.TypeFor[bool](), -1, -1, 0},
		{"f8", "FLOAT8", reflect.TypeFor[float64](), -1, -1, 0},
		{"n", "NUMERIC", reflect.TypeFor[float64](), -1, 10, 2},
		{"nn", "NUMERIC", reflect.TypeFor[float64](), -1, -1, 0},
		{"t", "TEXT", reflect.TypeFor[string](), math.MaxInt64, -1, 0},
		{"v", "VARCHAR", reflect.TypeFor[string](), 10, -1, 0},
		{"vv", "VARCHAR", reflect.TypeFor[string](), math.MaxInt64, -1, 0},
		{"c", "BPCHAR", reflect.TypeFor[string](), 3, -1, 0},
		{"ba", "BYTEA", reflect.TypeFor[[]byte](), math.MaxInt64, -1, 0},
		{"ts", "TIMESTAMPTZ", reflect.TypeFor[time.Time](), -1, 0, 6},
		{"d", "DATE", reflect.TypeFor[time.Time](), -1, -1, 0},
		{"j", "JSONB", reflect.TypeFor[[]byte](), -1, -1, 0},
		{"u", "UUID", reflect.TypeFor[string](), -1, -1, 0},
		{"a", "_INT4", reflect.TypeFor[string](), -1, -1, 0},
	}
	for _, q := range []struct {
		name  string
		query string
		args  []any
	}{
		{"literal", "SELECT * FROM ct", nil},
		{"args", "SELECT * FROM ct WHERE i4 IS DISTINCT FROM $1", []any{-1}},
	} {
		rows, err := db.Query(q.query, q.args...)
		if err != nil {
			t.Fatal(err)
		}
		cts, err := rows.ColumnTypes()
		if err != nil {
			t.Fatal(err)
		}
		if len(cts) != len(want) {
			t.Fatalf("%s: %d column types, want %d", q.name, len(cts), len(want))
		}
		for i, ct := range cts {
			w := want[i]
			if ct.Name() != w.name || ct.DatabaseTypeName() != w.dbType || ct.ScanType() != w.scanType {
				t.Errorf("%s: column %d: name %q type %q scan type %v, want %q %q %v", q.name, i, ct.Name(), ct.DatabaseTypeName(), ct.ScanType(), w.name, w.dbType, w.scanType)
			}
			length, ok := ct.Length()
			if (w.length == -1) == ok || (ok && length != w.length) {
				t.Errorf("%s: %s: Length() = %d, %v; want %d", q.name, w.name, length, ok, w.length)
			}
			prec, scale, ok := ct.DecimalSize()
			if (w.prec == -1) == ok || (ok && (prec != w.prec || scale != w.scale)) {
				t.Errorf("%s: %s: DecimalSize() = %d, %d, %v; want %d, %d", q.name, w.name, prec, scale, ok, w.prec, w.scale)
			}
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// A value scans into its column's scan type, which is what Next stores
	// but for the types pgx's stdlib reports narrower (int4) or as float64
	// (numeric); gorm allocates its map scans' destinations by it.
	mustExec(t, db, `INSERT INTO ct VALUES (1, 2, true, 1.5, 3.25, 4, 't', 'v', 'vv', 'c', '\x01', now(), '2020-01-01', '{}', gen_random_uuid(), '{1,2}')`)
	for _, args := range [][]any{nil, {-1}} {
		query := "SELECT * FROM ct"
		if args != nil {
			query += " WHERE i4 IS DISTINCT FROM $1"
		}
		rows, err := db.Query(query, args...)
		if err != nil {
			t.Fatal(err)
		}
		cts, _ := rows.ColumnTypes()
		if !rows.Next() {
			t.Fatal(rows.Err())
		}
		ptrs := make([]any, len(cts))
		for i, ct := range cts {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Errorf("args %v: scan into the scan types: %v", args, err)
		}
		rows.Close()
	}
}

func TestNextResultSet(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	rows, err := db.Query("SELECT 1; SELECT 'a', 'b'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int
	if !rows.Next() {
		t.Fatalf("no first row: %v", rows.Err())
	}
	if err := rows.Scan(&n); err != nil || n != 1 {
		t.Fatalf("first set: %d, %v", n, err)
	}
	if rows.Next() {
		t.Fatal("first set has a second row")
	}
	if !rows.NextResultSet() {
		t.Fatalf("no second result set: %v", rows.Err())
	}
	cols, _ := rows.Columns()
	if len(cols) != 2 {
		t.Fatalf("second set columns %v", cols)
	}
	if !rows.Next() {
		t.Fatalf("no second row: %v", rows.Err())
	}
	var a, b string
	if err := rows.Scan(&a, &b); err != nil || a != "a" || b != "b" {
		t.Fatalf("second set: %q %q %v", a, b, err)
	}
	if rows.Next() {
		t.Fatal("second set has a second row")
	}
	if rows.NextResultSet() {
		t.Fatal("a third result set")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// An error in a later statement is reported, and the db goes on.
	rows2, err := db.Query("SELECT 1; SELECT 1/0")
	if err == nil {
		for rows2.Next() {
		}
		rows2.NextResultSet()
		for rows2.Next() {
		}
		err = rows2.Err()
		if cerr := rows2.Close(); err == nil {
			err = cerr
		}
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Errorf("SELECT 1/0 in the second statement: %v, want SQLSTATE 22012", err)
	}
	dbsqlCheckWorks(t, db)
}

func TestPreparedConcurrent(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=4")
	mustExec(t, db, "CREATE TABLE pc (g int, n int)")
	q, err := db.Prepare("SELECT $1::int8 * 2, $2::text || '!'")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ins, err := db.Prepare("INSERT INTO pc (g, n) VALUES ($1, $2)")
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Close()
	const goroutines, iterations = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range iterations {
				var n int64
				var s string
				if err := q.QueryRow(int64(g*1000+i), fmt.Sprint(g)).Scan(&n, &s); err != nil {
					errs <- err
					return
				}
				if n != int64(2*(g*1000+i)) || s != fmt.Sprint(g)+"!" {
					errs <- fmt.Errorf("goroutine %d: got %d %q", g, n, s)
					return
				}
				if _, err := ins.Exec(g, i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var count, distinct int
	if err := db.QueryRow("SELECT count(*), count(DISTINCT (g, n)) FROM pc").Scan(&count, &distinct); err != nil {
		t.Fatal(err)
	}
	if count != goroutines*iterations || distinct != count {
		t.Errorf("inserted %d rows (%d distinct), want %d", count, distinct, goroutines*iterations)
	}
}

func TestIsolationLevels(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	ctx := context.Background()
	for _, tc := range []struct {
		level sql.IsolationLevel
		want  string // "" when PostgreSQL has no such level
	}{
		{sql.LevelDefault, "read committed"},
		{sql.LevelReadUncommitted, "read uncommitted"},
		{sql.LevelReadCommitted, "read committed"},
		{sql.LevelWriteCommitted, ""},
		{sql.LevelRepeatableRead, "repeatable read"},
		{sql.LevelSnapshot, "repeatable read"},
		{sql.LevelSerializable, "serializable"},
		{sql.LevelLinearizable, ""},
	} {
		for _, readOnly := range []bool{false, true} {
			tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: tc.level, ReadOnly: readOnly})
			if tc.want == "" {
				if err == nil {
					tx.Rollback()
					t.Errorf("%v: BeginTx succeeded, PostgreSQL has no such level", tc.level)
				} else if !strings.Contains(err.Error(), tc.level.String()) {
					t.Errorf("%v: error %q does not name the level", tc.level, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%v: %v", tc.level, err)
				continue
			}
			var level, ro string
			if err := tx.QueryRow("SHOW transaction_isolation").Scan(&level); err != nil {
				t.Error(err)
			}
			if err := tx.QueryRow("SELECT current_setting($1)", "transaction_read_only").Scan(&ro); err != nil {
				t.Error(err)
			}
			if level != tc.want || ro != map[bool]string{false: "off", true: "on"}[readOnly] {
				t.Errorf("%v read-only %v: transaction_isolation %q, transaction_read_only %q", tc.level, readOnly, level, ro)
			}
			if err := tx.Commit(); err != nil {
				t.Error(err)
			}
		}
	}
	dbsqlCheckWorks(t, db)
}

func TestTransactions(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE txt (id int PRIMARY KEY)")
	count := func() int {
		t.Helper()
		var n int
		if err := db.QueryRow("SELECT count(*) FROM txt").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("rollback discards", func(t *testing.T) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, tx, "INSERT INTO txt VALUES ($1)", 1)
		mustExec(t, tx, "INSERT INTO txt VALUES (2)")
		var inside int
		if err := tx.QueryRow("SELECT count(*) FROM txt").Scan(&inside); err != nil || inside != 2 {
			t.Fatalf("inside: %d, %v", inside, err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 0 {
			t.Fatalf("%d rows after rollback", n)
		}
	})

	t.Run("commit keeps", func(t *testing.T) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		mustExec(t, tx, "INSERT INTO txt VALUES ($1)", 10)
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 1 {
			t.Fatalf("%d rows after commit", n)
		}
	})

	t.Run("read-only rejects writes", func(t *testing.T) {
		tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		for _, args := range [][]any{{20}, nil} {
			query := "INSERT INTO txt VALUES (20)"
			if args != nil {
				query = "INSERT INTO txt VALUES ($1)"
			}
			_, err := tx.Exec(query, args...)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
				t.Errorf("%s in a read-only tx: %v, want SQLSTATE 25006", query, err)
			}
			if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			if tx, err = db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true}); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("failed commit", func(t *testing.T) {
		for _, query := range []string{"INSERT INTO txt VALUES ($1)", "INSERT INTO txt VALUES (10)"} {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			mustExec(t, tx, "INSERT INTO txt VALUES (30)")
			var args []any
			if strings.Contains(query, "$1") {
				args = []any{10}
			}
			if _, err := tx.Exec(query, args...); err == nil {
				t.Fatal("duplicate key accepted")
			}
			err = tx.Commit()
			if !errors.Is(err, pgpurepy.ErrTxRolledBack) {
				t.Errorf("Commit of a failed tx: %v, want ErrTxRolledBack", err)
			}
			if n := count(); n != 1 {
				t.Fatalf("%d rows after the failed commit", n)
			}
		}
		dbsqlCheckWorks(t, db)
	})

	t.Run("tx left open", func(t *testing.T) {
		// A Conn closed inside a transaction rolls it back before reuse.
		conn, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "BEGIN; INSERT INTO txt VALUES (40)"); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if n := count(); n != 1 {
			t.Fatalf("%d rows after a transaction left open", n)
		}
	})
}

func TestConnKeepsSearchPath(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=2")
	ctx := context.Background()
	mustExec(t, db, "CREATE SCHEMA s1; CREATE TABLE s1.items (name text); INSERT INTO s1.items VALUES ('in s1')")
	mustExec(t, db, "CREATE TABLE public.items (name text); INSERT INTO public.items VALUES ('in public')")
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	read := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}, args ...any) string {
		t.Helper()
		query := "SELECT name FROM items"
		if len(args) > 0 {
			query += " WHERE name IS DISTINCT FROM $1"
		}
		var name string
		if err := q.QueryRowContext(ctx, query, args...).Scan(&name); err != nil {
			t.Fatal(err)
		}
		return name
	}
	// Prepared and cached before the SET, by SQL text.
	if got := read(conn, "x"); got != "in public" {
		t.Fatalf("before SET: %q", got)
	}
	if _, err := conn.ExecContext(ctx, "SET search_path = s1"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		var path, schema string
		if err := conn.QueryRowContext(ctx, "SELECT current_setting('search_path'), current_schema()").Scan(&path, &schema); err != nil {
			t.Fatal(err)
		}
		if path != "s1" || schema != "s1" {
			t.Fatalf("statement %d: search_path %q, current_schema %q", i, path, schema)
		}
		if got := read(conn); got != "in s1" {
			t.Errorf("statement %d, literal: %q", i, got)
		}
		if got := read(conn, "x"); got != "in s1" {
			t.Errorf("statement %d, args: %q", i, got)
		}
	}
	// Other connections are not affected.
	if got := read(db); got != "in public" {
		t.Errorf("another connection: %q", got)
	}
}

// TestLargeResultStreamed reads 100,000 rows of 1 kB, about 100 MB, and
// checks that the heap does not grow with them. It is not parallel, so that
// no other test allocates meanwhile.
func TestLargeResultStreamed(t *testing.T) {
	db, _ := openDB(t)
	const n, width = 100_000, 1000
	for _, args := range [][]any{nil, {n}} {
		query := fmt.Sprintf("SELECT g, repeat('x', %d) FROM generate_series(1, %d) g", width, n)
		if args != nil {
			query = fmt.Sprintf("SELECT g, repeat('x', %d) FROM generate_series(1, $1) g", width)
		}
		var before, mid runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		rows, err := db.Query(query, args...)
		if err != nil {
			t.Fatal(err)
		}
		count := 0
		var g int
		var s []byte
		for rows.Next() {
			if err := rows.Scan(&g, &s); err != nil {
				t.Fatal(err)
			}
			count++
			if g != count || len(s) != width {
				t.Fatalf("row %d: g %d, %d bytes", count, g, len(s))
			}
			if count == n*3/4 {
				runtime.GC()
				runtime.ReadMemStats(&mid)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if count != n {
			t.Fatalf("%d rows, want %d", count, n)
		}
		growth := int64(mid.HeapAlloc) - int64(before.HeapAlloc)
		t.Logf("args %v: heap grew by %d kB while %d MB streamed", args, growth/1024, n*width>>20)
		if growth > 50<<20 {
			t.Errorf("args %v: heap grew by %d MB at row %d: the result is held in memory", args, growth>>20, n*3/4)
		}
	}
}

func TestServerErrors(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	mustExec(t, db, "CREATE TABLE uq (id int PRIMARY KEY)")
	mustExec(t, db, "INSERT INTO uq VALUES (1)")
	for _, tc := range []struct {
		query string
		args  []any
		code  string
	}{
		{"SELEC 1", nil, "42601"},
		{"SELEC $1", []any{1}, "42601"},
		{"INSERT INTO uq VALUES (1)", nil, "23505"},
		{"INSERT INTO uq VALUES ($1)", []any{1}, "23505"},
		{"SELECT * FROM no_such_table", nil, "42P01"},
		{"SELECT 1/$1::int4", []any{0}, "22012"},
	} {
		for _, method := range []string{"exec", "query", "queryrow"} {
			var err error
			switch method {
			case "exec":
				_, err = db.Exec(tc.query, tc.args...)
			case "query":
				var rows *sql.Rows
				rows, err = db.Query(tc.query, tc.args...)
				if err == nil {
					for rows.Next() {
					}
					err = rows.Err()
					rows.Close()
				}
			case "queryrow":
				var x any
				err = db.QueryRow(tc.query, tc.args...).Scan(&x)
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != tc.code {
				t.Errorf("%s %q: %v (%T), want *pgconn.PgError with SQLSTATE %s", method, tc.query, err, err, tc.code)
			}
			dbsqlCheckWorks(t, db)
		}
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM uq").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count %d, %v", n, err)
	}
}

func TestResult(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	mustExec(t, db, "CREATE TABLE res (id int, v int)")
	res, err := db.Exec("INSERT INTO res SELECT g, 0 FROM generate_series(1, 10) g")
	if err != nil {
		t.Fatal(err)
	}
	if id, err := res.LastInsertId(); !errors.Is(err, pgpurepy.ErrNoLastInsertID) {
		t.Errorf("LastInsertId() = %d, %v; want ErrNoLastInsertID", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 10 {
		t.Errorf("INSERT: RowsAffected() = %d, %v; want 10", n, err)
	}
	for _, tc := range []struct {
		query string
		args  []any
		want  int64
	}{
		{"UPDATE res SET v = v + 1 WHERE id <= $1", []any{7}, 7},
		{"UPDATE res SET v = v + 1 WHERE id <= 3", nil, 3},
		{"UPDATE res SET v = v + 1 WHERE id > $1", []any{100}, 0},
		{"DELETE FROM res WHERE id > $1", []any{8}, 2},
		{"UPDATE res SET v = 0; UPDATE res SET v = 1 WHERE id < 5", nil, 4}, // the last statement's count
		{"CREATE INDEX ON res (id)", nil, 0},
	} {
		res, err := db.Exec(tc.query, tc.args...)
		if err != nil {
			t.Errorf("%s: %v", tc.query, err)
			continue
		}
		if n, err := res.RowsAffected(); err != nil || n != tc.want {
			t.Errorf("%s: RowsAffected() = %d, %v; want %d", tc.query, n, err, tc.want)
		}
		if _, err := res.LastInsertId(); !errors.Is(err, pgpurepy.ErrNoLastInsertID) {
			t.Errorf("%s: LastInsertId: %v", tc.query, err)
		}
	}
}

func TestBadArguments(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=2")
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var pid int
	if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query  string
		args   []any
		pos    int
		goType string
		pgType string // "" for types refused before the statement is looked at
	}{
		{"SELECT $1::int4, $2::int4", []any{1, make(chan int)}, 2, "chan int", ""},
		{"SELECT $1::text", []any{func() {}}, 1, "func()", ""},
		{"SELECT $1::float8", []any{complex(1, 2)}, 1, "complex128", ""},
		{"SELECT $1::int4", []any{struct{}{}}, 1, "struct {}", "int4"},
		{"SELECT $1::text, $2::int4", []any{"ok", struct{ A int }{1}}, 2, "struct { A int }", "int4"},
		{"SELECT $1::int2", []any{int64(1 << 40)}, 1, "int64", "int2"},
		{"SELECT $1::date", []any{[]int{1}}, 1, "[]int", "date"},
	} {
		for _, run := range []struct {
			name string
			do   func() error
		}{
			{"exec", func() error { _, err := conn.ExecContext(ctx, tc.query, tc.args...); return err }},
			{"query", func() error {
				rows, err := conn.QueryContext(ctx, tc.query, tc.args...)
				if err == nil {
					rows.Close()
				}
				return err
			}},
			{"db", func() error { _, err := db.Exec(tc.query, tc.args...); return err }},
		} {
			err := run.do()
			var ae *pgpurepy.ArgumentError
			if !errors.As(err, &ae) {
				t.Errorf("%s %s %v: %v (%T), want *ArgumentError", run.name, tc.query, tc.goType, err, err)
				dbsqlCheckWorks(t, conn)
				continue
			}
			msg := err.Error()
			if ae.Position != tc.pos || ae.GoType != tc.goType || ae.PgType != tc.pgType {
				t.Errorf("%s %s: ArgumentError{Position %d, GoType %q, PgType %q}, want %d %q %q", run.name, tc.query, ae.Position, ae.GoType, ae.PgType, tc.pos, tc.goType, tc.pgType)
			}
			if !strings.Contains(msg, fmt.Sprintf("$%d", tc.pos)) || !strings.Contains(msg, tc.goType) || !strings.Contains(msg, tc.pgType) {
				t.Errorf("%s %s: %q does not name $%d, %s and %q", run.name, tc.query, msg, tc.pos, tc.goType, tc.pgType)
			}
			dbsqlCheckWorks(t, conn)
		}
	}
	// It was the same connection all along, and it was never replaced.
	var pidAfter int
	if err := conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pidAfter); err != nil {
		t.Fatal(err)
	}
	if pidAfter != pid {
		t.Errorf("the Conn's backend changed from %d to %d: a bad argument broke the connection", pid, pidAfter)
	}
	if st := dbsqlStats(t, db); len(st.ConnectionsClosed) != 0 {
		t.Errorf("connections closed after bad arguments: %v", st.ConnectionsClosed)
	}
}

// TestBadDSN: a bad DSN fails in sql.Open with an error naming the key, and
// never shows the password.
func TestBadDSN(t *testing.T) {
	t.Parallel()
	const pw = "Sekrit4711pw"
	for _, tc := range []struct {
		dsn string
		key string // "" for pgconn-level errors
	}{
		{"postgres://app:" + pw + "@localhost/app?connection_count=abc", "connection_count"},
		{"postgres://app:" + pw + "@localhost/app?cancel_grace=-1s", "cancel_grace"},
		{"postgres://app:" + pw + "@localhost/app?query_mode=fast", "query_mode"},
		{"host=localhost user=app password=" + pw + " connection_count=abc", "connection_count"},
		{"host=localhost user=app password='" + pw + "' cancel_grace=-1s", "cancel_grace"},
		{"host=localhost user=app password=" + pw + " query_mode=fast", "query_mode"},
		{"port=notaport password=" + pw, ""},
		{"postgres://app:" + pw + "@localhost:notaport/app", ""},
		{"postgres://app:" + pw + "@localhost/app?sslmode=bogus", ""},
		{"host=localhost password=" + pw + " sslmode=bogus", ""},
	} {
		for _, open := range []struct {
			name string
			do   func(string) error
		}{
			{"sql.Open", func(dsn string) error {
				db, err := sql.Open("pgpurepy", dsn)
				if err == nil {
					db.Close()
				}
				return err
			}},
			{"OpenDB", func(dsn string) error {
				db, err := pgpurepy.OpenDB(dsn)
				if err == nil {
					db.Close()
				}
				return err
			}},
			{"Driver.Open", func(dsn string) error {
				c, err := (&pgpurepy.Driver{}).Open(dsn)
				if err == nil {
					c.Close()
				}
				return err
			}},
		} {
			err := open.do(tc.dsn)
			if err == nil {
				t.Errorf("%s(%q) succeeded", open.name, tc.dsn)
				continue
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("%s(%q): error shows the password: %v", open.name, tc.dsn, err)
			}
			if !strings.HasPrefix(err.Error(), "pgpurepy: ") {
				t.Errorf("%s(%q): %q lacks the pgpurepy: prefix", open.name, tc.dsn, err)
			}
			if tc.key == "" {
				continue
			}
			var ce *pgpurepy.ConfigError
			if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(err.Error(), tc.key) {
				t.Errorf("%s(%q): %v, want a *ConfigError naming %s", open.name, tc.dsn, err, tc.key)
			}
		}
	}
}

// dbsqlPasswordDSN returns the SCRAM role's DSN on a fresh database, skipping when
// the server has no such role (an external server).
func dbsqlPasswordDSN(t *testing.T) (dsn, password string) {
	t.Helper()
	fresh := sqltest.DB(t)
	u, err := url.Parse(fresh)
	if err != nil {
		t.Fatal(err)
	}
	dsn, password = sqltest.Shared(t).PasswordDSN(strings.TrimPrefix(u.Path, "/"))
	if dsn == "" {
		t.Skip("the test server has no password role")
	}
	return dsn, password
}

func TestPasswordAuth(t *testing.T) {
	t.Parallel()
	dsn, password := dbsqlPasswordDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	db, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var user string
	if err := db.QueryRowContext(ctx, "SELECT current_user").Scan(&user); err != nil {
		t.Fatalf("right password: %v", err)
	}

	u, _ := url.Parse(dsn)
	const wrong = "WrongPw-0815"
	u.User = url.UserPassword(u.User.Username(), wrong)
	bad, err := sql.Open("pgpurepy", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	err = bad.PingContext(ctx)
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, "authentication failed") {
		t.Errorf("wrong password: %q does not say authentication failed", msg)
	}
	if strings.Contains(msg, wrong) || strings.Contains(msg, password) {
		t.Errorf("wrong password: error shows a password: %q", msg)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Errorf("wrong password: %v, want a *pgconn.PgError with SQLSTATE 28P01", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wrong password: waited for the deadline: %v", err)
	}
}

// An unknown DSN key goes to the server as a setting, which refuses it when
// the connection opens.
func TestUnknownDSNKey(t *testing.T) {
	t.Parallel()
	dsn, password := dbsqlPasswordDSN(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sql.Open("pgpurepy", dsn+"&no_such_setting_xyz=1")
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	defer db.Close()
	err = db.PingContext(ctx)
	if err == nil {
		t.Fatal("the server accepted an unknown setting")
	}
	if !strings.Contains(err.Error(), "no_such_setting_xyz") {
		t.Errorf("%q does not name the parameter", err)
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("error shows the password: %q", err)
	}
}

func TestServerDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	const pw = "Sekrit4711pw"
	for _, dsn := range []string{
		"postgres://app:" + pw + "@" + addr + "/app?sslmode=disable",
		"host=127.0.0.1 port=" + addr[strings.LastIndex(addr, ":")+1:] + " user=app password=" + pw + " sslmode=disable connection_count=2",
	} {
		db, err := sql.Open("pgpurepy", dsn)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = db.PingContext(ctx)
		ctxErr := ctx.Err()
		cancel()
		db.Close()
		if err == nil {
			t.Fatalf("Ping to %s succeeded", addr)
		}
		msg := err.Error()
		if ctxErr != nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Ping waited for the deadline instead of reporting the failure: %v", err)
		}
		if !strings.Contains(msg, "connect") || !strings.Contains(msg, "refused") {
			t.Errorf("%q does not say it cannot connect", msg)
		}
		if strings.Contains(msg, pw) {
			t.Errorf("error shows the password: %q", msg)
		}
	}
}

// cancel_grace bounds the rollback and the ping of a checkout. If 0 is
// accepted, the pool must still work with it.
func TestCancelGraceZero(t *testing.T) {
	t.Parallel()
	dsn := sqltest.DB(t) + "&cancel_grace=0&ping_after_idle=1ms"
	db, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		var ce *pgpurepy.ConfigError
		if errors.As(err, &ce) && ce.Key == "cancel_grace" {
			return // refused: fine
		}
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxIdleConns(0)
	ctx := context.Background()
	for i := range 3 {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatalf("round %d: begin: %v", i, err)
		}
		if err := tx.Rollback(); err != nil {
			t.Errorf("round %d: rollback with cancel_grace=0: %v", i, err)
		}
		time.Sleep(5 * time.Millisecond) // past ping_after_idle
		if err := db.PingContext(ctx); err != nil {
			t.Errorf("round %d: ping: %v", i, err)
		}
	}
	if st := dbsqlStats(t, db); len(st.ConnectionsClosed) != 0 {
		t.Errorf("connections closed with cancel_grace=0: %v", st.ConnectionsClosed)
	}
}

// dbsqlStats returns the statistics of db's pool.
func dbsqlStats(t testing.TB, db *sql.DB) pgpurepy.Stats {
	t.Helper()
	x, err := pgpurepy.Ext(db)
	if err != nil {
		t.Fatal(err)
	}
	return x.Stats()
}

// After SET search_path the same SQL text may name a table whose columns
// have other types. The connection's cached statement must not make the
// query fail or decode the new column as the old type, in either query
// mode.
func TestSearchPathChangesResultType(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{pgpurepy.QueryModePrepare, pgpurepy.QueryModeDescribe} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			db, _ := openDB(t, "query_mode="+mode)
			ctx := context.Background()
			mustExec(t, db, "CREATE TABLE things (v text); INSERT INTO things VALUES ('text in public')")
			mustExec(t, db, "CREATE SCHEMA s2; CREATE TABLE s2.things (v int8); INSERT INTO s2.things VALUES (42)")
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			const query = "SELECT v FROM things WHERE $1::bool"
			var v any
			if err := conn.QueryRowContext(ctx, query, true).Scan(&v); err != nil || v != "text in public" {
				t.Fatalf("before SET: %#v, %v", v, err)
			}
			if _, err := conn.ExecContext(ctx, "SET search_path = s2"); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				v = nil
				if err := conn.QueryRowContext(ctx, query, true).Scan(&v); err != nil {
					t.Errorf("query %d after SET search_path: %v", i+1, err)
					continue
				}
				if v != int64(42) {
					t.Errorf("query %d after SET search_path: %#v (%T), want int64(42)", i+1, v, v)
				}
			}
			// An int4 column decoded in binary before, a text column now.
			mustExec(t, db, "CREATE TABLE public.nums (v int4); INSERT INTO public.nums VALUES (7)")
			mustExec(t, db, "CREATE SCHEMA s3; CREATE TABLE s3.nums (v text); INSERT INTO s3.nums VALUES ('abcd')")
			const numsQuery = "SELECT v FROM nums WHERE $1::bool"
			if _, err := conn.ExecContext(ctx, "SET search_path = public"); err != nil {
				t.Fatal(err)
			}
			if err := conn.QueryRowContext(ctx, numsQuery, true).Scan(&v); err != nil || v != int64(7) {
				t.Fatalf("nums before SET: %#v, %v", v, err)
			}
			if _, err := conn.ExecContext(ctx, "SET search_path = s3"); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				v = nil
				err := conn.QueryRowContext(ctx, numsQuery, true).Scan(&v)
				if err != nil {
					t.Errorf("nums query %d after SET search_path: %v", i+1, err)
				} else if v != "abcd" {
					t.Errorf("nums query %d after SET search_path: %#v (%T), want \"abcd\"", i+1, v, v)
				}
			}
		})
	}
}

// Closing rows early, in the middle of a large result, leaves the
// connection ready for the next statement.
func TestRowsClosedEarly(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, args := range [][]any{nil, {50_000}} {
		query := "SELECT g, repeat('y', 100) FROM generate_series(1, 50000) g"
		if args != nil {
			query = "SELECT g, repeat('y', 100) FROM generate_series(1, $1) g"
		}
		rows, err := conn.QueryContext(ctx, query, args...)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10 && rows.Next(); i++ {
		}
		if err := rows.Close(); err != nil {
			t.Errorf("args %v: Close: %v", args, err)
		}
		dbsqlCheckWorks(t, conn)
	}
	// A multi-statement query closed before its second result set.
	rows, err := conn.QueryContext(ctx, "SELECT 1; SELECT 2; SELECT 3")
	if err != nil {
		t.Fatal(err)
	}
	rows.Next()
	if err := rows.Close(); err != nil {
		t.Errorf("Close of a multi-statement query: %v", err)
	}
	dbsqlCheckWorks(t, conn)
}

// A caller whose context ends while every connection is busy gets an error
// that says it waited for a connection, wrapping the context's error.
func TestAcquireWaitError(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=1")
	db.SetMaxOpenConns(2)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = db.ExecContext(ctx, "SELECT 1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's deadline", err)
	}
	if want := "pgpurepy: waiting for a connection: context deadline exceeded"; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}
