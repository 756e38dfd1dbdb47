package pgpurepy_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"iter"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/converters"
)

// copyTypesDDL is a table with a column of each kind CopyFrom must encode;
// copyTypesColumns are its columns but id.
const copyTypesDDL = `CREATE TABLE %s (
	id int4 PRIMARY KEY, i2 int2, i8 int8, f8 float8, b bool, t text, vc varchar(40),
	by bytea, n numeric, ts timestamptz, d date, u uuid, j jsonb,
	ia int8[], ta text[], m mood, ma mood[])`

var copyTypesColumns = []string{"id", "i2", "i8", "f8", "b", "t", "vc", "by", "n", "ts", "d", "u", "j", "ia", "ta", "m", "ma"}

// copyTypesRows are rows of every kind of value, NULLs (nil and a nil
// pointer) and the values a text format would have to escape among them.
func copyTypesRows() [][]any {
	ts := time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.UTC)
	var nilInt *int64
	return [][]any{
		{1, int16(-32768), int64(9223372036854775807), 1.5, true, "plain", "vc",
			[]byte{0, 1, 2, 255}, "12345678901234567890.123456789", ts, ts, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `{"a": [1, 2]}`,
			[]int64{1, -2, 3}, []string{"x", "y z", `q"uote`}, Mood("happy"), []Mood{"sad", "ok"}},
		{2, 7, -1, -0.25, false, "tab\there\nnewline\\backslash\rcr ünïcödé", "",
			[]byte{}, 3.75, ts.Add(-time.Hour), ts, "00000000-0000-0000-0000-000000000000", `[]`,
			[]int64{}, []string{""}, Mood("sad"), []Mood{}},
		{3, nil, nilInt, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil},
		{4, int32(0), 0, 0.0, true, "", "x", []byte("bytes"), "-0.5", ts, ts, "ffffffff-ffff-ffff-ffff-ffffffffffff", `"s"`,
			[]int64{42}, []string{"NULL", "\\N"}, Mood("ok"), []Mood{"happy"}},
	}
}

// copyDB opens a database with the mood enum and its converter (with its
// array) registered on the pool.
func copyDB(t *testing.T, extra ...string) (*sql.DB, *pgpurepy.Pool) {
	t.Helper()
	db, _ := openDB(t, extra...)
	mustExec(t, db, "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')")
	x := ext(t, db)
	if err := x.AddConverterWithArray(context.Background(), converters.Enum[Mood]("mood")); err != nil {
		t.Fatal(err)
	}
	return db, x
}

// countRows returns the number of rows of table.
func countRows(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCopyFromRoundTrip copies rows of every kind and checks that the table
// holds exactly what the same rows inserted one by one through Execute
// give, and a few values by hand (NULL against empty, bytes, escapes).
func TestCopyFromRoundTrip(t *testing.T) {
	db, x := copyDB(t)
	ctx := context.Background()
	mustExec(t, db, fmt.Sprintf(copyTypesDDL, "copied"))
	mustExec(t, db, fmt.Sprintf(copyTypesDDL, "inserted"))
	rows := copyTypesRows()

	n, err := x.CopyFrom(ctx, pgpurepy.Identifier{"copied"}, copyTypesColumns, pgpurepy.CopyRows(rows))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(len(rows)) {
		t.Fatalf("copied %d rows, want %d", n, len(rows))
	}
	params := make([]string, len(copyTypesColumns))
	for i := range params {
		params[i] = fmt.Sprintf("$%d", i+1)
	}
	for _, r := range rows {
		if _, err := x.Execute(ctx, "INSERT INTO inserted VALUES ("+strings.Join(params, ", ")+")", r...); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"SELECT * FROM copied EXCEPT SELECT * FROM inserted", "SELECT * FROM inserted EXCEPT SELECT * FROM copied"} {
		diff, err := x.Fetch(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range diff {
			t.Errorf("%s: %v", q, d.Values())
		}
	}

	row, err := x.FetchOne(ctx, "SELECT t, vc, by, n::text, ts, m, ma, ta::text FROM copied WHERE id = 2")
	if err != nil {
		t.Fatal(err)
	}
	var (
		text, vc, num, ta string
		by                []byte
		ts                time.Time
		m                 Mood
		ma                []Mood
	)
	if err := row.Scan(&text, &vc, &by, &num, &ts, &m, &ma, &ta); err != nil {
		t.Fatal(err)
	}
	if text != rows[1][5] || vc != "" || by == nil || len(by) != 0 || num != "3.75" || !ts.Equal(rows[1][9].(time.Time)) ||
		m != "sad" || ma == nil || len(ma) != 0 || ta != `{""}` {
		t.Errorf("row 2 came back as %q %q %v %q %v %q %v %q", text, vc, by, num, ts, m, ma, ta)
	}
	row, err = x.FetchOne(ctx, "SELECT count(*) FROM copied WHERE id = 3 AND num_nulls(i2, i8, f8, b, t, vc, by, n, ts, d, u, j, ia, ta, m, ma) = 16")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := row.Get("count"); v != int64(1) {
		t.Error("row 3's values are not all NULL")
	}
}

// TestCopyFromTextFormat copies into a table with a column whose type the
// session has no binary codec for (an enum without a converter), which
// sends the whole copy in the text format: values that need escaping, NULL
// against the empty string, bytea, arrays and timestamps must survive it.
func TestCopyFromTextFormat(t *testing.T) {
	db, _ := openDB(t)
	x := ext(t, db)
	ctx := context.Background()
	mustExec(t, db, "CREATE TYPE color AS ENUM ('red', 'green')")
	mustExec(t, db, "CREATE TABLE t (id int, c color, s text, by bytea, ia int[], ts timestamptz, n numeric)")
	ts := time.Date(2024, 1, 2, 3, 4, 5, 6000, time.UTC)
	weird := "a\tb\nc\\d\re \\N \\."
	rows := [][]any{
		{1, "red", weird, []byte{0, '\t', '\\', 255}, []int64{1, 2}, ts, "1.25"},
		{2, "green", "", []byte{}, []int64{}, ts, 2.5},
		{3, nil, nil, nil, nil, nil, nil},
		{4, "red", `\N`, []byte(`\N`), []int64{-1}, ts, int64(7)},
	}
	n, err := x.CopyFrom(ctx, pgpurepy.Identifier{"t"}, []string{"id", "c", "s", "by", "ia", "ts", "n"}, pgpurepy.CopyRows(rows))
	if err != nil || n != 4 {
		t.Fatalf("CopyFrom: %d, %v", n, err)
	}
	got, err := x.Fetch(ctx, "SELECT id, c::text, s, by, ia::text, ts, n::text FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]any{
		{int64(1), "red", weird, []byte{0, '\t', '\\', 255}, "{1,2}", ts, "1.25"},
		{int64(2), "green", "", []byte{}, "{}", ts, "2.5"},
		{int64(3), nil, nil, nil, nil, nil, nil},
		{int64(4), "red", `\N`, []byte(`\N`), "{-1}", ts, "7"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i, r := range got {
		for j, v := range r.Values() {
			w := want[i][j]
			same := fmt.Sprintf("%#v", v) == fmt.Sprintf("%#v", w)
			if tv, ok := v.(time.Time); ok {
				same = tv.Equal(w.(time.Time))
			}
			if !same {
				t.Errorf("row %d column %d: %#v, want %#v", i+1, j+1, v, w)
			}
		}
	}
}

// TestCopyFromIterator copies from a lazy source that reuses one slice, so
// nothing holds all rows, and checks what arrived.
func TestCopyFromIterator(t *testing.T) {
	db, _ := openDB(t)
	x := ext(t, db)
	mustExec(t, db, "CREATE TABLE t (id int8, label text)")
	const total = 100_000
	source := func(yield func([]any, error) bool) {
		row := make([]any, 2)
		for i := range total {
			row[0], row[1] = int64(i), fmt.Sprintf("row %d", i)
			if !yield(row, nil) {
				return
			}
		}
	}
	n, err := x.CopyFrom(context.Background(), pgpurepy.Identifier{"t"}, []string{"id", "label"}, source)
	if err != nil || n != total {
		t.Fatalf("CopyFrom: %d, %v", n, err)
	}
	var count, sum int64
	var last string
	if err := db.QueryRow("SELECT count(*), sum(id), max(label) FILTER (WHERE id = $1) FROM t", total-1).Scan(&count, &sum, &last); err != nil {
		t.Fatal(err)
	}
	if count != total || sum != total*(total-1)/2 || last != fmt.Sprintf("row %d", total-1) {
		t.Fatalf("table has %d rows, sum %d, last %q", count, sum, last)
	}
}

// copyCheckKept checks, after a failed copy on a pool of one connection,
// that the copy left nothing in table and that the connection (pid) is
// still the pool's and serves.
func copyCheckKept(t *testing.T, db *sql.DB, x *pgpurepy.Pool, table string, pid int, opened uint64) {
	t.Helper()
	if n := countRows(t, db, table); n != 0 {
		t.Fatalf("%d rows were copied; the copy must be all or nothing", n)
	}
	if got := backendPID(t, db); got != pid {
		t.Fatalf("backend pid changed from %d to %d: the connection was replaced", pid, got)
	}
	if got := x.Stats().ConnectionsOpened; got != opened {
		t.Fatalf("the pool opened %d connections", got-opened)
	}
}

// TestCopyFromBadRows sends a row of the wrong width, a value that does not
// encode, and a source that fails, each after enough rows that data has
// already gone to the server: the error names the row and the column, the
// table stays empty and the connection is kept.
func TestCopyFromBadRows(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	mustExec(t, db, "CREATE TABLE t (id int8, amount int4, note text)")
	pid := backendPID(t, db)
	opened := x.Stats().ConnectionsOpened
	const bad = 50_000
	sourceErr := errors.New("the source broke")
	cases := []struct {
		name    string
		row     []any
		srcErr  error
		want    pgpurepy.CopyError
		message string
	}{
		{name: "too few values", row: []any{bad, 1},
			want: pgpurepy.CopyError{Row: bad, Column: "note", PgType: "text"}, message: `copy row 50000, column "note" of type text: no value`},
		{name: "too many values", row: []any{bad, 1, "x", 3.5},
			want: pgpurepy.CopyError{Row: bad, GoType: "float64"}, message: "copy row 50000, Go type float64: a value too many"},
		{name: "bad value", row: []any{bad, "not a number", "x"},
			want: pgpurepy.CopyError{Row: bad, Column: "amount", PgType: "int4", GoType: "string"}, message: `copy row 50000, column "amount" of type int4, Go type string`},
		{name: "out of range", row: []any{bad, int64(1) << 40, "x"},
			want: pgpurepy.CopyError{Row: bad, Column: "amount", PgType: "int4", GoType: "int64"}},
		{name: "unencodable type", row: []any{bad, 1, struct{ A int }{1}},
			want: pgpurepy.CopyError{Row: bad, Column: "note", PgType: "text", GoType: "struct { A int }"}},
		{name: "source error", srcErr: sourceErr, message: "the source failed after 49999 rows: the source broke"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			source := func(yield func([]any, error) bool) {
				for i := 1; i < bad; i++ {
					if !yield([]any{i, i, "fine"}, nil) {
						return
					}
				}
				if tc.srcErr != nil {
					yield(nil, tc.srcErr)
					return
				}
				if yield(tc.row, nil) {
					t.Error("the source was asked for a row after the bad one")
				}
			}
			_, err := x.CopyFrom(context.Background(), pgpurepy.Identifier{"t"}, []string{"id", "amount", "note"}, source)
			if err == nil {
				t.Fatal("the copy succeeded")
			}
			if tc.message != "" && !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not contain %q", err, tc.message)
			}
			if tc.srcErr != nil {
				if !errors.Is(err, tc.srcErr) {
					t.Errorf("error %v does not wrap the source's", err)
				}
			} else {
				var ce *pgpurepy.CopyError
				if !errors.As(err, &ce) {
					t.Fatalf("error %v (%T) is not a *CopyError", err, err)
				}
				if ce.Row != tc.want.Row || ce.Column != tc.want.Column || ce.PgType != tc.want.PgType || ce.GoType != tc.want.GoType {
					t.Errorf("got %+v, want %+v", *ce, tc.want)
				}
			}
			if pgCode(err) != "" {
				t.Errorf("the server's echo of the abort came through: %v", err)
			}
			copyCheckKept(t, db, x, "t", pid, opened)
		})
	}
}

// TestCopyFromServerError gets a constraint violation from the server in
// the middle of the copy: it comes through as a *pgconn.PgError, the source
// is not read to its end, and the connection is kept.
func TestCopyFromServerError(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	mustExec(t, db, "CREATE TABLE t (id int8 PRIMARY KEY)")
	pid := backendPID(t, db)
	opened := x.Stats().ConnectionsOpened
	const total = 2_000_000
	read := 0
	source := func(yield func([]any, error) bool) {
		for i := range total {
			read++
			if !yield([]any{i % 1000}, nil) {
				return
			}
		}
	}
	_, err := x.CopyFrom(context.Background(), pgpurepy.Identifier{"t"}, []string{"id"}, source)
	if pgCode(err) != "23505" {
		t.Fatalf("got %v, want a unique violation", err)
	}
	if read == total {
		t.Error("the source was read to its end after the server had failed the copy")
	}
	copyCheckKept(t, db, x, "t", pid, opened)
}

// TestCopyFromCancelKeepsConnection ends the context of a large copy, with
// the caller sending (a fast source) and with the caller inside the source
// (a slow one): the call returns the context's error, the copy is
// cancelled on the server, nothing is copied, and the connection is kept.
func TestCopyFromCancelKeepsConnection(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	mustExec(t, db, "CREATE TABLE t (id int8 PRIMARY KEY, payload text)")
	for _, slow := range []bool{false, true} {
		t.Run(fmt.Sprintf("slow=%v", slow), func(t *testing.T) {
			pid := backendPID(t, db)
			before := x.Stats()
			source := func(yield func([]any, error) bool) {
				row := make([]any, 2)
				for i := range 20_000_000 {
					if slow && i > 10_000 {
						time.Sleep(time.Millisecond)
					}
					row[0], row[1] = int64(i), "some payload to make the rows longer"
					if !yield(row, nil) {
						return
					}
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := x.CopyFrom(ctx, pgpurepy.Identifier{"t"}, []string{"id", "payload"}, source)
			assertCtxErr(t, err, context.DeadlineExceeded)
			if !pgconn.Timeout(err) {
				t.Errorf("pgconn.Timeout(%v) is false", err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("the cancelled copy took %v to return", took)
			}
			resPoll(t, "the cancel counted as kept", func() (bool, string) {
				s := x.Stats()
				return s.CancelsKept > before.CancelsKept, fmt.Sprintf("%+v", s)
			})
			copyCheckKept(t, db, x, "t", pid, before.ConnectionsOpened)
		})
	}
	_ = db.Close()
}

// TestCopyFromSourcePanics lets the source panic in the middle of a copy:
// the panic reaches the caller, the copy is aborted, and the connection is
// kept and serves.
func TestCopyFromSourcePanics(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	mustExec(t, db, "CREATE TABLE t (id int8)")
	pid := backendPID(t, db)
	opened := x.Stats().ConnectionsOpened
	func() {
		defer func() {
			if r := recover(); r != "source panic" {
				t.Fatalf("recovered %v", r)
			}
		}()
		_, _ = x.CopyFrom(context.Background(), pgpurepy.Identifier{"t"}, []string{"id"}, func(yield func([]any, error) bool) {
			for i := range 100_000 {
				if i == 90_000 {
					panic("source panic")
				}
				yield([]any{i}, nil)
			}
		})
		t.Fatal("CopyFrom returned")
	}()
	copyCheckKept(t, db, x, "t", pid, opened)
}

// TestCopyFromInTransaction copies inside CheckoutInTransaction, as the
// transaction's first statement (which carries its deferred BEGIN): the
// rows are visible in the transaction, and gone after its rollback; a
// committed one keeps them.
func TestCopyFromInTransaction(t *testing.T) {
	db, _ := openDB(t)
	x := ext(t, db)
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE t (id int8)")
	rows := make([][]any, 1000)
	for i := range rows {
		rows[i] = []any{i}
	}
	errRollback := errors.New("roll back")
	err := x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
		n, err := c.CopyFrom(ctx, pgpurepy.Identifier{"t"}, []string{"id"}, pgpurepy.CopyRows(rows))
		if err != nil || n != 1000 {
			t.Fatalf("CopyFrom: %d, %v", n, err)
		}
		row, err := c.FetchOne(ctx, "SELECT count(*) FROM t")
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := row.Get("count"); v != int64(1000) {
			t.Fatalf("the transaction sees %v rows", v)
		}
		var out bytes.Buffer
		if n, err := c.CopyTo(ctx, "SELECT count(*) FROM t", &out); err != nil || n != 1 || out.String() != "1000\n" {
			t.Fatalf("CopyTo in the transaction: %d, %q, %v", n, out.String(), err)
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatal(err)
	}
	if n := countRows(t, db, "t"); n != 0 {
		t.Fatalf("%d rows survived the rollback", n)
	}
	err = x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
		_, err := c.CopyFrom(ctx, pgpurepy.Identifier{"t"}, []string{"id"}, pgpurepy.CopyRows(rows))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, db, "t"); n != 1000 {
		t.Fatalf("%d rows after the commit, want 1000", n)
	}
}

// TestCopyIdentifierQuoting copies into names that need quoting and checks
// that a name can never be read as SQL.
func TestCopyIdentifierQuoting(t *testing.T) {
	db, _ := openDB(t)
	x := ext(t, db)
	ctx := context.Background()
	if got, want := (pgpurepy.Identifier{`my "schema"`, "t\x00; x"}).Sanitize(), `"my ""schema"""."t; x"`; got != want {
		t.Fatalf("Sanitize: %s, want %s", got, want)
	}
	mustExec(t, db, `CREATE SCHEMA "odd schema"`)
	mustExec(t, db, `CREATE TABLE "odd schema"."we""ird; table" ("col ""1""" int, "SELECT" text)`)
	mustExec(t, db, "CREATE TABLE victim (v int)")
	n, err := x.CopyFrom(ctx, pgpurepy.Identifier{"odd schema", `we"ird; table`}, []string{`col "1"`, "SELECT"},
		pgpurepy.CopyRows([][]any{{1, "a"}, {2, "b"}}))
	if err != nil || n != 2 {
		t.Fatalf("CopyFrom: %d, %v", n, err)
	}
	for _, table := range []pgpurepy.Identifier{{"victim; DROP TABLE victim; --"}, {`victim" (v) FROM STDIN; DROP TABLE victim; --`}} {
		_, err := x.CopyFrom(ctx, table, []string{"v"}, pgpurepy.CopyRows([][]any{{1}}))
		if pgCode(err) != "42P01" {
			t.Errorf("table %q: got %v, want undefined_table", table, err)
		}
	}
	_, err = x.CopyFrom(ctx, pgpurepy.Identifier{"victim"}, []string{"v) FROM STDIN; DROP TABLE victim; --"}, pgpurepy.CopyRows([][]any{{1}}))
	if pgCode(err) != "42703" {
		t.Errorf("got %v, want undefined_column", err)
	}
	if n := countRows(t, db, "victim"); n != 0 {
		t.Fatal(n)
	}
	for _, bad := range []struct {
		table   pgpurepy.Identifier
		columns []string
		rows    iter.Seq2[[]any, error]
	}{
		{nil, []string{"v"}, pgpurepy.CopyRows(nil)},
		{pgpurepy.Identifier{"victim"}, nil, pgpurepy.CopyRows(nil)},
		{pgpurepy.Identifier{"victim"}, []string{"v"}, nil},
	} {
		if _, err := x.CopyFrom(ctx, bad.table, bad.columns, bad.rows); err == nil {
			t.Errorf("CopyFrom(%v, %v, rows nil: %v) succeeded", bad.table, bad.columns, bad.rows == nil)
		}
	}
}

// TestCopyTo writes a query's rows in the text format, with NULLs and
// escapes, and takes a query that ends in a semicolon or a line comment.
func TestCopyTo(t *testing.T) {
	db, _ := openDB(t)
	x := ext(t, db)
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE t (id int, s text, by bytea)")
	mustExec(t, db, `INSERT INTO t VALUES (1, 'a'||chr(9)||'b', '\x00ff'), (2, NULL, NULL), (3, '', '')`)
	want := "1\ta\\tb\t\\\\x00ff\n2\t\\N\t\\N\n3\t\t\\\\x\n"
	for _, q := range []string{
		"SELECT * FROM t ORDER BY id",
		"SELECT * FROM t ORDER BY id;\n",
		"SELECT * FROM t ORDER BY id -- a comment",
		"TABLE t ORDER BY id",
	} {
		var out bytes.Buffer
		n, err := x.CopyTo(ctx, q, &out)
		if err != nil || n != 3 || out.String() != want {
			t.Errorf("CopyTo(%q): %d, %v,\n%q, want\n%q", q, n, err, out.String(), want)
		}
	}
	_, err := x.CopyTo(ctx, "SELECT * FROM missing", &bytes.Buffer{})
	if pgCode(err) != "42P01" {
		t.Fatalf("got %v, want undefined_table", err)
	}
	var out bytes.Buffer
	if n, err := x.CopyTo(ctx, "SELECT 1 WHERE false", &out); err != nil || n != 0 || out.Len() != 0 {
		t.Fatalf("an empty result: %d, %q, %v", n, out.String(), err)
	}
}

// failingWriter fails once it has taken limit bytes.
type failingWriter struct {
	limit, n int
}

var errWriterFull = errors.New("writer full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		return 0, errWriterFull
	}
	w.n += len(p)
	return len(p), nil
}

// TestCopyToCancelKeepsConnection stops a long COPY TO by its context and
// by a failing writer: each returns its error at once, the statement stops
// on the server, and the connection is kept.
func TestCopyToCancelKeepsConnection(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	// A set-returning function in the target list streams its rows.
	const query = "SELECT generate_series(1, 10000000), repeat('x', 100) /* copy-to-cancel */"

	// Warm the backend's caches, so that rows flow before the deadline.
	if _, err := x.CopyTo(context.Background(), strings.Replace(query, "10000000", "10", 1), io.Discard); err != nil {
		t.Fatal(err)
	}
	pid := backendPID(t, db)
	before := x.Stats()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	out := &failingWriter{limit: 1 << 62}
	_, err := x.CopyTo(ctx, query, out)
	assertCtxErr(t, err, context.DeadlineExceeded)
	if out.n == 0 {
		t.Error("nothing was written before the deadline")
	}
	waitNoActive(t, db, "copy-to-cancel")

	_, err = x.CopyTo(context.Background(), query, &failingWriter{limit: 1 << 20})
	if !errors.Is(err, errWriterFull) {
		t.Fatalf("got %v, want the writer's error", err)
	}
	waitNoActive(t, db, "copy-to-cancel")
	resPoll(t, "both cancels counted as kept", func() (bool, string) {
		s := x.Stats()
		return s.CancelsKept >= before.CancelsKept+2, fmt.Sprintf("%+v", s)
	})
	if got := backendPID(t, db); got != pid {
		t.Fatalf("backend pid changed from %d to %d", pid, got)
	}
	if got := x.Stats().ConnectionsOpened; got != before.ConnectionsOpened {
		t.Fatalf("the pool opened %d connections", got-before.ConnectionsOpened)
	}
	_ = db.Close()
}

// panicWriter panics on its first write.
type panicWriter struct{}

func (panicWriter) Write([]byte) (int, error) { panic("writer panic") }

// TestCopyToWriterPanics lets the writer panic: the panic reaches the
// caller, and the pool replaces the connection, which pgconn left in the
// middle of the copy, and serves.
func TestCopyToWriterPanics(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	pid := backendPID(t, db)
	func() {
		defer func() {
			if r := recover(); r != "writer panic" {
				t.Fatalf("recovered %v", r)
			}
		}()
		_, _ = x.CopyTo(context.Background(), "SELECT generate_series(1, 10)", panicWriter{})
		t.Fatal("CopyTo returned")
	}()
	if got := backendPID(t, db); got == pid {
		t.Fatal("the connection the copy was left on serves again")
	}
	dbsqlCheckWorks(t, db)
}

// TestCopyTraced checks that the Tracer sees both directions.
func TestCopyTraced(t *testing.T) {
	_, dsn := openDB(t)
	cfg, err := pgpurepy.ParseConfig(dsn)
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
	mustExec(t, db, "CREATE TABLE t (v int)")
	x := ext(t, db)
	ctx := context.Background()
	if _, err := x.CopyFrom(ctx, pgpurepy.Identifier{"t"}, []string{"v"}, pgpurepy.CopyRows([][]any{{1}, {2}})); err != nil {
		t.Fatal(err)
	}
	if _, err := x.CopyTo(ctx, "TABLE t", &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	want := [][2]string{{"CREATE TABLE t (v int)", "CREATE TABLE"}, {`COPY "t" ("v") FROM STDIN`, "COPY 2"}, {"COPY (\nTABLE t\n) TO STDOUT", "COPY 2"}}
	if len(tr.starts) != len(want) || len(tr.ends) != len(want) {
		t.Fatalf("starts %q ends %q", tr.starts, tr.ends)
	}
	for i, w := range want {
		if tr.starts[i] != w[0] || tr.ends[i] != w[1] || tr.errs[i] != nil {
			t.Errorf("traced %q %q %v, want %q %q", tr.starts[i], tr.ends[i], tr.errs[i], w[0], w[1])
		}
	}
}

// CopyFrom loads rows in bulk with COPY, from a slice (CopyRows) or from
// any iterator, and CopyTo writes a query's rows out. Both work on the pool
// and inside Checkout or CheckoutInTransaction.
func ExamplePool_CopyFrom() {
	_, ext, done := exampleDB()
	defer done()
	ctx := context.Background()

	n, err := ext.CopyFrom(ctx, pgpurepy.Identifier{"accounts"}, []string{"id", "owner", "balance"},
		pgpurepy.CopyRows([][]any{{4, "dee", 10}, {5, "eve", 20}}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("copied", n)

	// An iterator streams rows without holding them all; a bad row aborts
	// the whole copy and names the row.
	rows := func(yield func([]any, error) bool) {
		for i := 6; i <= 8; i++ {
			balance := any(i)
			if i == 8 {
				balance = "lots"
			}
			if !yield([]any{i, fmt.Sprint("user", i), balance}, nil) {
				return
			}
		}
	}
	_, err = ext.CopyFrom(ctx, pgpurepy.Identifier{"accounts"}, []string{"id", "owner", "balance"}, rows)
	var ce *pgpurepy.CopyError
	fmt.Println(errors.As(err, &ce), ce.Row, ce.Column)

	n, err = ext.CopyTo(ctx, "SELECT id, owner, balance FROM accounts WHERE id > 3 ORDER BY id", os.Stdout)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, "rows")
	// Output:
	// copied 2
	// true 3 balance
	// 4	dee	10
	// 5	eve	20
	// 2 rows
}
