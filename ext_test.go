package pgpurepy_test

// Tests of the extension (ext.go, row.go) against the real server.
// Synchronisation is never a sleep: holders block on channels, and gauges
// are polled with a generous bound until the expected value appears (the
// bound only limits how long a failing test takes, it is not a timing
// assertion).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgpurepy/pgpurepy"
)

// extRecv waits for one value on ch, failing the test after extBound.
func extRecv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(extBound):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// extHolder holds one connection of x with Checkout until release is
// closed. It signals on acquired once it holds the connection and sends
// Checkout's result on errs.
func extHolder(x *pgpurepy.Pool, acquired chan<- struct{}, release <-chan struct{}, errs chan<- error) {
	errs <- x.Checkout(context.Background(), func(*pgpurepy.Conn) error {
		acquired <- struct{}{}
		<-release
		return nil
	})
}

func extNoErrors(t testing.TB, errs chan error) {
	t.Helper()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// extCount returns the single integer of query's first row.
func extCount(t testing.TB, x *pgpurepy.Pool, query string, args ...any) int64 {
	t.Helper()
	row, err := x.FetchOne(context.Background(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	var n int64
	if err := row.Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// extTxState returns the state pg_stat_activity shows for backend pid, as
// watcher (another connection) sees it: between two statements "idle" or
// "idle in transaction", the server's view of whether the session is in a
// transaction. It returns "" when there is no such backend.
func extTxState(t testing.TB, watcher *sql.DB, pid int64) string {
	t.Helper()
	var state string
	err := watcher.QueryRow("SELECT state FROM pg_stat_activity WHERE pid = $1", pid).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return ""
	}
	if err != nil {
		t.Fatalf("state of backend %d: %v", pid, err)
	}
	return state
}

// TestExtGaugesExact: with 4 connections held by 4 goroutines the pool has
// exactly 0 idle, and 3 more callers are exactly 3 waiting tasks; when the
// holders let go, everything goes back.
func TestExtGaugesExact(t *testing.T) {
	db, _ := openDB(t, "connection_count=4")
	x := ext(t, db)
	if x.MaxConnections() != 4 || x.Stats().MaxConnections != 4 {
		t.Fatalf("MaxConnections = %d, Stats().MaxConnections = %d, want 4", x.MaxConnections(), x.Stats().MaxConnections)
	}
	extWarm(t, x)
	if s := x.Stats(); s.OpenConnections != 4 || s.InUse != 0 {
		t.Fatalf("warm pool: %+v", s)
	}
	before := x.Stats()

	release := make(chan struct{})
	acquired := make(chan struct{}, 8)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
		wg.Wait()
	}()
	for range 4 {
		wg.Go(func() { extHolder(x, acquired, release, errs) })
	}
	for i := range 4 {
		extRecv(t, acquired, fmt.Sprintf("holder %d", i))
	}
	// All four hold a connection now: nothing is idle, exactly.
	if s := x.Stats(); s.IdleConnections != 0 || s.InUse != 4 || s.WaitingTasks != 0 {
		t.Fatalf("4 holders: %+v", s)
	}
	if x.IdleConnections() != 0 || x.WaitingTasks() != 0 {
		t.Fatalf("4 holders: IdleConnections=%d WaitingTasks=%d", x.IdleConnections(), x.WaitingTasks())
	}

	// Three more callers queue.
	for range 3 {
		wg.Go(func() {
			_, err := x.Execute(context.Background(), "SELECT 1")
			errs <- err
		})
	}
	extWaitGauges(t, x, 0, 3)
	if x.WaitingTasks() != 3 || x.IdleConnections() != 0 {
		t.Fatalf("3 waiters: IdleConnections=%d WaitingTasks=%d", x.IdleConnections(), x.WaitingTasks())
	}

	close(release)
	wg.Wait()
	extNoErrors(t, errs)
	// Every caller has returned, and a connection is back in the pool
	// before its caller returns: the gauges are back at once.
	s := x.Stats()
	if s.IdleConnections != 4 || s.WaitingTasks != 0 || s.InUse != 0 || s.OpenConnections != 4 {
		t.Fatalf("after release: %+v", s)
	}
	if d := s.Acquires - before.Acquires; d != 7 {
		t.Errorf("Acquires grew by %d, want 7", d)
	}
	if d := s.WaitedAcquires - before.WaitedAcquires; d != 3 {
		t.Errorf("WaitedAcquires grew by %d, want 3", d)
	}
	if s.WaitDuration <= before.WaitDuration {
		t.Errorf("WaitDuration did not grow: %v -> %v", before.WaitDuration, s.WaitDuration)
	}
	if s.ConnectionsOpened != 4 {
		t.Errorf("ConnectionsOpened = %d, want 4", s.ConnectionsOpened)
	}
}

// TestExtGaugesDatabaseSQL: a *sql.Conn holds one of the pool's connections
// while it is open; when it is closed the session goes back to the pool
// although database/sql keeps the connection in its own idle list. The two
// paths queue in the same line.
func TestExtGaugesDatabaseSQL(t *testing.T) {
	db, _ := openDB(t, "connection_count=4")
	x := ext(t, db)
	extWarm(t, x)
	ctx := context.Background()

	c1, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s := x.Stats(); s.IdleConnections != 3 || s.InUse != 1 {
		t.Fatalf("one *sql.Conn open: %+v", s)
	}
	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	if s := x.Stats(); s.IdleConnections != 4 || s.InUse != 0 {
		t.Fatalf("*sql.Conn closed: %+v", s)
	}
	if n := db.Stats().Idle; n < 1 {
		t.Fatalf("database/sql did not keep the closed *sql.Conn idle (db.Stats().Idle = %d); the test proves nothing", n)
	}

	// All four held through database/sql: an extension caller waits.
	var conns []*sql.Conn
	for range 4 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if s := x.Stats(); s.IdleConnections != 0 || s.InUse != 4 {
		t.Fatalf("four *sql.Conn open: %+v", s)
	}
	errs := make(chan error, 4)
	go func() {
		_, err := x.Execute(ctx, "SELECT 1")
		errs <- err
	}()
	extWaitGauges(t, x, 0, 1)
	if err := conns[0].Close(); err != nil {
		t.Fatal(err)
	}
	if err := extRecv(t, errs, "the extension waiter"); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns[1:] {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if s := x.Stats(); s.IdleConnections != 4 || s.WaitingTasks != 0 {
		t.Fatalf("all closed: %+v", s)
	}

	// All four held through the extension: a database/sql caller waits in
	// the pool's line too.
	release := make(chan struct{})
	acquired := make(chan struct{}, 4)
	errs = make(chan error, 16)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { extHolder(x, acquired, release, errs) })
	}
	for range 4 {
		extRecv(t, acquired, "holder")
	}
	go func() {
		_, err := db.ExecContext(ctx, "SELECT 1")
		errs <- err
	}()
	extWaitGauges(t, x, 0, 1)
	close(release)
	wg.Wait()
	for range 5 {
		if err := extRecv(t, errs, "callers"); err != nil {
			t.Error(err)
		}
	}
	extWaitGauges(t, x, 4, 0)
}

// TestExtWaitersFIFO: callers get a connection in the order they asked.
func TestExtWaitersFIFO(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	extWarm(t, x)

	release := make(chan struct{})
	acquired := make(chan struct{}, 1)
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	wg.Go(func() { extHolder(x, acquired, release, errs) })
	extRecv(t, acquired, "holder")

	const n = 8
	var mu sync.Mutex
	var order []int
	for i := range n {
		wg.Go(func() {
			errs <- x.Checkout(context.Background(), func(c *pgpurepy.Conn) error {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				_, err := c.Execute(context.Background(), "SELECT 1")
				return err
			})
		})
		// Start the next one only when this one is in line.
		extWaitGauges(t, x, 0, i+1)
	}
	close(release)
	wg.Wait()
	extNoErrors(t, errs)
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(order, want) {
		t.Fatalf("waiters served in order %v, want %v", order, want)
	}
}

func TestExtExecuteFetch(t *testing.T) {
	db, _ := openDB(t, "connection_count=2")
	x := ext(t, db)
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE ext_items (id int PRIMARY KEY, name text)")

	n, err := x.Execute(ctx, "INSERT INTO ext_items VALUES (1, 'a'), (2, 'b'), (3, 'c')")
	if err != nil || n != 3 {
		t.Fatalf("Execute insert: %d, %v", n, err)
	}
	n, err = x.Execute(ctx, "UPDATE ext_items SET name = upper(name) WHERE id >= $1", 2)
	if err != nil || n != 2 {
		t.Fatalf("Execute update with argument: %d, %v", n, err)
	}
	n, err = x.Execute(ctx, "CREATE INDEX ON ext_items (name)")
	if err != nil || n != 0 {
		t.Fatalf("Execute DDL: %d, %v", n, err)
	}
	if _, err := x.Execute(ctx, "INSERT INTO ext_items VALUES (1, 'dup')"); pgCode(err) != "23505" {
		t.Fatalf("duplicate key: %v", err)
	}

	rows, err := x.Fetch(ctx, "SELECT id, name FROM ext_items ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		var id int
		var name string
		if err := r.Scan(&id, &name); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s", id, name))
	}
	if want := []string{"1 a", "2 B", "3 C"}; !slices.Equal(got, want) {
		t.Fatalf("Fetch = %v, want %v", got, want)
	}
	rows, err = x.Fetch(ctx, "SELECT id FROM ext_items WHERE id > $1", 100)
	if err != nil || len(rows) != 0 {
		t.Fatalf("Fetch of nothing: %v, %v", rows, err)
	}

	row, err := x.FetchOne(ctx, "SELECT name FROM ext_items WHERE id = $1", 2)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := row.Get("name"); v != "B" {
		t.Fatalf("FetchOne: %v", v)
	}
	row, err = x.FetchOne(ctx, "SELECT name FROM ext_items WHERE id = $1", 42)
	if !errors.Is(err, sql.ErrNoRows) || !errors.Is(err, pgpurepy.ErrNoRows) || row != nil {
		t.Fatalf("FetchOne of nothing: %v, %v", row, err)
	}

	row, err = x.FetchOneOrNone(ctx, "SELECT name FROM ext_items WHERE id = $1", 42)
	if err != nil || row != nil {
		t.Fatalf("FetchOneOrNone of nothing: %v, %v", row, err)
	}
	row, err = x.FetchOneOrNone(ctx, "SELECT name FROM ext_items WHERE id = 3")
	if err != nil || row == nil {
		t.Fatalf("FetchOneOrNone: %v, %v", row, err)
	}
	if v, _ := row.Get("name"); v != "C" {
		t.Fatalf("FetchOneOrNone: %v", v)
	}

	// Errors come back from every form, and the pool goes on.
	if _, err := x.Fetch(ctx, "SELECT * FROM ext_missing"); pgCode(err) != "42P01" {
		t.Fatalf("Fetch of a missing table: %v", err)
	}
	if _, err := x.FetchOne(ctx, "SELECT * FROM ext_missing"); pgCode(err) != "42P01" {
		t.Fatalf("FetchOne of a missing table: %v", err)
	}
	if _, err := x.FetchOneOrNone(ctx, "SELECT 1/0"); pgCode(err) != "22012" {
		t.Fatalf("FetchOneOrNone of 1/0: %v", err)
	}
	if got := extCount(t, x, "SELECT count(*) FROM ext_items"); got != 3 {
		t.Fatalf("count = %d", got)
	}
}

// TestExtFetchOneManyRows documents what happens when a query returns more
// rows than asked for: FetchOne and FetchOneOrNone return the first row, the
// rest is discarded, and the connection (the same backend) serves the next
// statement.
func TestExtFetchOneManyRows(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	ctx := context.Background()
	pid := extCount(t, x, "SELECT pg_backend_pid()")
	opened := x.Stats().ConnectionsOpened

	for _, q := range []struct {
		query string
		args  []any
	}{
		{"SELECT g, repeat('x', 100) FROM generate_series(1, 100000) g", nil},            // simple protocol
		{"SELECT g, repeat('x', 100) FROM generate_series(1, $1::int) g", []any{100000}}, // extended protocol
	} {
		row, err := x.FetchOne(ctx, q.query, q.args...)
		if err != nil {
			t.Fatalf("%s: %v", q.query, err)
		}
		var g int
		var s string
		if err := row.Scan(&g, &s); err != nil || g != 1 || len(s) != 100 {
			t.Fatalf("%s: first row %d, %d chars, %v", q.query, g, len(s), err)
		}
		if got := extCount(t, x, "SELECT 2"); got != 2 {
			t.Fatalf("statement after FetchOne: %d", got)
		}
		row, err = x.FetchOneOrNone(ctx, q.query, q.args...)
		if err != nil || row == nil {
			t.Fatalf("FetchOneOrNone %s: %v, %v", q.query, row, err)
		}
		if v, _ := row.Get("g"); v != int64(1) {
			t.Fatalf("FetchOneOrNone first row: %v", v)
		}
		if n, err := x.Execute(ctx, "SELECT 1"); err != nil || n != 1 {
			t.Fatalf("Execute after FetchOneOrNone: %d, %v", n, err)
		}
	}
	if got := extCount(t, x, "SELECT pg_backend_pid()"); got != pid {
		t.Fatalf("backend changed from %d to %d: the connection was replaced", pid, got)
	}
	if s := x.Stats(); s.ConnectionsOpened != opened {
		t.Fatalf("pool opened %d more connections", s.ConnectionsOpened-opened)
	}
}

// TestExtRowScan scans one row into many kinds of destination.
func TestExtRowScan(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	ctx := context.Background()
	const q = `SELECT 42::int4 AS i, 9000000000::int8 AS big, 1.5::float8 AS f, 'hi'::text AS s,
		'\x0102'::bytea AS b, true AS ok, '2024-01-02 03:04:05.5+00'::timestamptz AS ts,
		NULL::text AS n, 12.50::numeric AS num, $1::text AS arg`
	row, err := x.FetchOne(ctx, q, "param")
	if err != nil {
		t.Fatal(err)
	}
	wantCols := []string{"i", "big", "f", "s", "b", "ok", "ts", "n", "num", "arg"}
	if !slices.Equal(row.Columns(), wantCols) {
		t.Fatalf("Columns = %v", row.Columns())
	}
	wantTS := time.Date(2024, 1, 2, 3, 4, 5, 500_000_000, time.UTC)

	var (
		i    int
		big  int64
		f    float32
		s    string
		b    []byte
		ok   bool
		ts   time.Time
		n    *string
		num  string
		arg  sql.NullString
		anyI any
	)
	if err := row.Scan(&i, &big, &f, &s, &b, &ok, &ts, &n, &num, &arg); err != nil {
		t.Fatal(err)
	}
	if i != 42 || big != 9000000000 || f != 1.5 || s != "hi" || string(b) != "\x01\x02" || !ok ||
		!ts.Equal(wantTS) || n != nil || num != "12.50" || arg.String != "param" || !arg.Valid {
		t.Fatalf("scanned %v %v %v %q %x %v %v %v %q %+v", i, big, f, s, b, ok, ts, n, num, arg)
	}

	// Other destinations for the same columns.
	var (
		i8   int8
		u64  uint64
		f64  float64
		sb   []byte
		bs   string
		tsS  string
		nNS  sql.NullString
		numF float64
		ptrI *int
	)
	if err := row.Scan(&i8, &u64, &f64, &sb, &bs, &anyI, &tsS, &nNS, &numF, &ptrI); err == nil {
		t.Fatal("scanning 'param' into *int succeeded")
	}
	if err := row.Scan(&i8, &u64, &f64, &sb, &bs, &anyI, &tsS, &nNS, &numF, new(any)); err != nil {
		t.Fatal(err)
	}
	if i8 != 42 || u64 != 9000000000 || f64 != 1.5 || string(sb) != "hi" || bs != "\x01\x02" || anyI != true ||
		tsS == "" || nNS.Valid || numF != 12.5 {
		t.Fatalf("scanned %v %v %v %q %q %v %q %+v %v", i8, u64, f64, sb, bs, anyI, tsS, nNS, numF)
	}
	if parsed, err := time.Parse(time.RFC3339Nano, tsS); err != nil || !parsed.Equal(wantTS) {
		t.Fatalf("timestamptz into string: %q, %v", tsS, err)
	}

	// Errors name the column.
	var i32 int32
	err = row.Scan(new(int), &i32, new(float64), new(string), new([]byte), new(bool), new(time.Time), new(*string), new(string), new(string))
	if err == nil || !strings.Contains(err.Error(), `"big"`) || !strings.Contains(err.Error(), "overflows") {
		t.Fatalf("int8 9000000000 into int32: %v", err)
	}
	err = row.Scan(new(int), new(int64), new(float64), new(string), new([]byte), new(bool), new(time.Time), new(string), new(string), new(string))
	if err == nil || !strings.Contains(err.Error(), `"n"`) {
		t.Fatalf("NULL into string: %v", err)
	}
	if err := row.Scan(new(int)); err == nil {
		t.Fatal("Scan with too few destinations succeeded")
	}
	numRow, err := x.FetchOne(ctx, "SELECT 12.50::numeric AS num WHERE $1::bool", true)
	if err != nil {
		t.Fatal(err)
	}
	var iFromNumeric int
	if err := numRow.Scan(&iFromNumeric); err == nil {
		t.Fatalf("numeric 12.50 into int gave %d without an error", iFromNumeric)
	}
	if err := row.Scan(i, &big, &f, &s, &b, &ok, &ts, &n, &num, &arg); err == nil {
		t.Fatal("Scan into a non-pointer succeeded")
	}

	// Get by name, Values in order.
	if v, found := row.Get("big"); !found || v != int64(9000000000) {
		t.Fatalf("Get(big) = %v, %v", v, found)
	}
	if v, found := row.Get("n"); !found || v != nil {
		t.Fatalf("Get(n) = %v, %v", v, found)
	}
	if v, found := row.Get("missing"); found || v != nil {
		t.Fatalf("Get(missing) = %v, %v", v, found)
	}
	vals := row.Values()
	if len(vals) != len(wantCols) || vals[0] != int64(42) || vals[3] != "hi" || vals[7] != nil {
		t.Fatalf("Values = %v", vals)
	}
	vals[0] = "changed"
	if v, _ := row.Get("i"); v != int64(42) {
		t.Fatal("changing Values' slice changed the row")
	}

	// Duplicate column names: the first wins.
	row, err = x.FetchOne(ctx, "SELECT 1 AS a, 2 AS a")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := row.Get("a"); v != int64(1) {
		t.Fatalf("Get of a duplicate name: %v", v)
	}
}

// TestExtQueryIterator: Query streams; break ends it and releases the
// connection; an error is the sequence's last element.
func TestExtQueryIterator(t *testing.T) {
	db, _ := openDB(t, "connection_count=4")
	x := ext(t, db)
	extWarm(t, x)
	ctx := context.Background()

	var got []int64
	for row, err := range x.Query(ctx, "SELECT g FROM generate_series(1, $1::int) g", 100000) {
		if err != nil {
			t.Fatal(err)
		}
		if s := x.Stats(); s.IdleConnections != 3 || s.InUse != 1 {
			t.Fatalf("inside the loop: %+v", s)
		}
		v, _ := row.Get("g")
		got = append(got, v.(int64))
		if len(got) == 3 {
			break
		}
	}
	if !slices.Equal(got, []int64{1, 2, 3}) {
		t.Fatalf("rows %v", got)
	}
	// The break read the rest of the result off the wire, without a
	// cancel (which would roll back what the statement did), and gave the
	// connection back.
	if s := x.Stats(); s.IdleConnections != 4 || s.InUse != 0 || s.CancelsSent != 0 || s.ConnectionsOpened != 4 {
		t.Fatalf("after break: %+v", s)
	}

	// A full loop.
	var sum int64
	count := 0
	for row, err := range x.Query(ctx, "SELECT g FROM generate_series(1, 1000) g") {
		if err != nil {
			t.Fatal(err)
		}
		var g int64
		if err := row.Scan(&g); err != nil {
			t.Fatal(err)
		}
		sum += g
		count++
	}
	if count != 1000 || sum != 500500 {
		t.Fatalf("full loop: %d rows, sum %d", count, sum)
	}

	// An error half-way through ends the sequence as its last element.
	var seen []int64
	var lastErr error
	steps := 0
	for row, err := range x.Query(ctx, "SELECT 10 / (5 - g) AS v FROM generate_series(1, 10) g") {
		steps++
		if err != nil {
			lastErr = err
			continue
		}
		v, _ := row.Get("v")
		seen = append(seen, v.(int64))
	}
	if pgCode(lastErr) != "22012" || steps != len(seen)+1 {
		t.Fatalf("error in the middle: rows %v, %d steps, err %v", seen, steps, lastErr)
	}
	// An error before the first row.
	steps = 0
	for row, err := range x.Query(ctx, "SELECT * FROM ext_missing") {
		steps++
		if row != nil || pgCode(err) != "42P01" {
			t.Fatalf("query of a missing table: %v, %v", row, err)
		}
	}
	if steps != 1 {
		t.Fatalf("%d steps for a failed query", steps)
	}
	// An already cancelled context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for _, err := range x.Query(cctx, "SELECT 1") {
		assertCtxErr(t, err, context.Canceled)
	}
	if s := x.Stats(); s.IdleConnections != 4 || s.InUse != 0 {
		t.Fatalf("after the loops: %+v", s)
	}
	if got := extCount(t, x, "SELECT 7"); got != 7 {
		t.Fatal(got)
	}
}

type extUser struct {
	ID    int64  `db:"id"`
	Name  string `db:"user_name"`
	Email *string
	Skip  string `db:"-"`
	Score float64
	note  string //nolint:unused // unexported fields are ignored
}

func TestExtScanStructFetchStructs(t *testing.T) {
	db, _ := openDB(t, "connection_count=2")
	x := ext(t, db)
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE ext_users (id int8 PRIMARY KEY, name text NOT NULL, email text, score float8 NOT NULL DEFAULT 0)")
	mustExec(t, db, "INSERT INTO ext_users VALUES (1, 'ann', 'ann@example.com', 1.5), (2, 'bob', NULL, 2)")

	users, err := pgpurepy.FetchStructs[extUser](ctx, x, "SELECT id, name AS user_name, email, score FROM ext_users ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].ID != 1 || users[0].Name != "ann" || users[0].Email == nil ||
		*users[0].Email != "ann@example.com" || users[0].Score != 1.5 ||
		users[1].ID != 2 || users[1].Name != "bob" || users[1].Email != nil || users[1].Score != 2 {
		t.Fatalf("FetchStructs = %+v", users)
	}
	// Fields without a column keep their zero value.
	users, err = pgpurepy.FetchStructs[extUser](ctx, x, "SELECT id FROM ext_users WHERE id = $1", 2)
	if err != nil || len(users) != 1 || users[0] != (extUser{ID: 2}) {
		t.Fatalf("partial columns: %+v, %v", users, err)
	}
	// No rows: no structs, no error.
	users, err = pgpurepy.FetchStructs[extUser](ctx, x, "SELECT id FROM ext_users WHERE false")
	if err != nil || len(users) != 0 {
		t.Fatalf("no rows: %+v, %v", users, err)
	}

	// A column without a field is an error that names it; so is one that
	// only matches a field tagged "-" or under another tag.
	for _, tc := range []struct{ query, col string }{
		{"SELECT id, name FROM ext_users", "name"},
		{"SELECT id, 'x' AS skip FROM ext_users", "skip"},
		{"SELECT id, 'x' AS note FROM ext_users", "note"},
	} {
		_, err = pgpurepy.FetchStructs[extUser](ctx, x, tc.query)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", tc.col)) {
			t.Fatalf("%s: error %v does not name column %q", tc.query, err, tc.col)
		}
	}
	// A database error comes back as it is.
	if _, err := pgpurepy.FetchStructs[extUser](ctx, x, "SELECT * FROM ext_missing"); pgCode(err) != "42P01" {
		t.Fatalf("missing table: %v", err)
	}

	row, err := x.FetchOne(ctx, "SELECT id, name AS user_name FROM ext_users WHERE id = 1")
	if err != nil {
		t.Fatal(err)
	}
	u, err := pgpurepy.ScanStruct[extUser](row)
	if err != nil || u.ID != 1 || u.Name != "ann" {
		t.Fatalf("ScanStruct: %+v, %v", u, err)
	}
	if _, err := pgpurepy.ScanStruct[int](row); err == nil {
		t.Fatal("ScanStruct into int succeeded")
	}
	row, err = x.FetchOne(ctx, "SELECT 'not a number' AS id")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgpurepy.ScanStruct[extUser](row); err == nil || !strings.Contains(err.Error(), `"id"`) {
		t.Fatalf("text into int64 field: %v", err)
	}
	if s := x.Stats(); s.InUse != 0 {
		t.Fatalf("connections left checked out: %+v", s)
	}
}

// TestExtCheckoutInTransaction covers commit, rollback on error, panic and
// context end, the failed commit, savepoints and transaction options.
func TestExtCheckoutInTransaction(t *testing.T) {
	db, _ := openDB(t, "connection_count=2")
	x := ext(t, db)
	mustExec(t, db, "CREATE TABLE ext_tx (v int PRIMARY KEY)")
	ctx := context.Background()
	count := func(t *testing.T) int64 { t.Helper(); return extCount(t, x, "SELECT count(*) FROM ext_tx") }
	values := func(t *testing.T) []int64 {
		t.Helper()
		rows, err := x.Fetch(ctx, "SELECT v FROM ext_tx ORDER BY v")
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, r := range rows {
			v, _ := r.Get("v")
			out = append(out, v.(int64))
		}
		return out
	}
	reset := func(t *testing.T) {
		t.Helper()
		if _, err := x.Execute(ctx, "TRUNCATE ext_tx"); err != nil {
			t.Fatal(err)
		}
	}
	noneInUse := func(t *testing.T) {
		t.Helper()
		if s := x.Stats(); s.InUse != 0 || s.WaitingTasks != 0 {
			t.Fatalf("connection not returned: %+v", s)
		}
		if n := extCount(t, x, "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND datname = current_database()"); n != 0 {
			t.Fatalf("%d sessions left idle in transaction", n)
		}
	}

	t.Run("commit", func(t *testing.T) {
		reset(t)
		var pid int64
		err := x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
			if _, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (1), (2)"); err != nil {
				return err
			}
			row, err := c.FetchOne(ctx, "SELECT pg_backend_pid()")
			if err != nil {
				return err
			}
			if err := row.Scan(&pid); err != nil {
				return err
			}
			if extTxState(t, db, pid) != "idle in transaction" {
				return errors.New("fn does not run in a transaction")
			}
			// Not visible from another connection before the commit.
			if n := extCount(t, x, "SELECT count(*) FROM ext_tx"); n != 0 {
				return fmt.Errorf("uncommitted rows visible elsewhere: %d", n)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := values(t); !slices.Equal(got, []int64{1, 2}) {
			t.Fatalf("after commit: %v", got)
		}
		noneInUse(t)
	})

	t.Run("error", func(t *testing.T) {
		reset(t)
		errFn := errors.New("fn failed")
		err := x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
			if _, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (1)"); err != nil {
				return err
			}
			return fmt.Errorf("wrapped: %w", errFn)
		})
		if !errors.Is(err, errFn) {
			t.Fatalf("error %v is not fn's", err)
		}
		if n := count(t); n != 0 {
			t.Fatalf("%d rows after rollback", n)
		}
		// A statement error returned by fn.
		err = x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
			if _, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (1)"); err != nil {
				return err
			}
			_, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (1)")
			return err
		})
		if pgCode(err) != "23505" {
			t.Fatalf("duplicate key in fn: %v", err)
		}
		if n := count(t); n != 0 {
			t.Fatalf("%d rows after rollback", n)
		}
		noneInUse(t)
	})

	t.Run("panic", func(t *testing.T) {
		reset(t)
		type boom struct{ n int }
		var recovered any
		func() {
			defer func() { recovered = recover() }()
			_ = x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
				if _, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (1)"); err != nil {
					return err
				}
				panic(boom{42})
			})
		}()
		if recovered != (boom{42}) {
			t.Fatalf("recovered %#v, want boom{42}", recovered)
		}
		if n := count(t); n != 0 {
			t.Fatalf("%d rows after the panic", n)
		}
		noneInUse(t)
		// The same through Checkout: the connection comes back.
		recovered = nil
		func() {
			defer func() { recovered = recover() }()
			_ = x.Checkout(ctx, func(c *pgpurepy.Conn) error { panic("checkout panic") })
		}()
		if recovered != "checkout panic" {
			t.Fatalf("recovered %#v", recovered)
		}
		noneInUse(t)
	})

	t.Run("context", func(t *testing.T) {
		reset(t)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		err := x.CheckoutInTransaction(cctx, func(c *pgpurepy.Conn) error {
			if _, err := c.Execute(cctx, "INSERT INTO ext_tx VALUES (1)"); err != nil {
				return err
			}
			cancel() // the caller gave up: fn's nil must not commit
			return nil
		})
		assertCtxErr(t, err, context.Canceled)
		if n := count(t); n != 0 {
			t.Fatalf("%d rows after the context ended", n)
		}
		// A context that ends during a statement.
		dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer dcancel()
		err = x.CheckoutInTransaction(dctx, func(c *pgpurepy.Conn) error {
			if _, err := c.Execute(dctx, "INSERT INTO ext_tx VALUES (1)"); err != nil {
				return err
			}
			_, err := c.Execute(dctx, "SELECT pg_sleep(30)")
			return err
		})
		assertCtxErr(t, err, context.DeadlineExceeded)
		if n := count(t); n != 0 {
			t.Fatalf("%d rows after the deadline", n)
		}
		// A context that has ended before.
		err = x.CheckoutInTransaction(cctx, func(c *pgpurepy.Conn) error {
			t.Error("fn ran with an ended context")
			return nil
		})
		assertCtxErr(t, err, context.Canceled)
		noneInUse(t)
	})

	t.Run("failed commit", func(t *testing.T) {
		reset(t)
		var stmtErr error
		err := x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
			if _, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (1)"); err != nil {
				return err
			}
			_, stmtErr = c.Execute(ctx, "INSERT INTO ext_tx VALUES (1)") // fails: duplicate
			return nil                                                   // and fn swallows it
		})
		if pgCode(stmtErr) != "23505" {
			t.Fatalf("statement in fn: %v", stmtErr)
		}
		if !errors.Is(err, pgpurepy.ErrTxRolledBack) {
			t.Fatalf("CheckoutInTransaction = %v, want ErrTxRolledBack", err)
		}
		if n := count(t); n != 0 {
			t.Fatalf("%d rows after the failed commit", n)
		}
		noneInUse(t)
	})

	t.Run("savepoint", func(t *testing.T) {
		reset(t)
		errInner := errors.New("inner failed")
		err := x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
			if _, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (1)"); err != nil {
				return err
			}
			// Inner work that returns an error: only it is undone.
			err := c.Transaction(ctx, func(c *pgpurepy.Conn) error {
				if _, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (2)"); err != nil {
					return err
				}
				return errInner
			})
			if !errors.Is(err, errInner) {
				return fmt.Errorf("inner transaction returned %w", err)
			}
			// Inner work whose statement fails: the savepoint rolls back
			// the failure, and the outer transaction goes on.
			err = c.Transaction(ctx, func(c *pgpurepy.Conn) error {
				if _, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (3)"); err != nil {
					return err
				}
				_, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (1)")
				return err
			})
			if pgCode(err) != "23505" {
				return fmt.Errorf("inner duplicate returned %w", err)
			}
			// Two levels deep, committed.
			err = c.Transaction(ctx, func(c *pgpurepy.Conn) error {
				if _, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (4)"); err != nil {
					return err
				}
				_ = c.Transaction(ctx, func(c *pgpurepy.Conn) error {
					if _, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (5)"); err != nil {
						return err
					}
					return errInner
				})
				return c.Transaction(ctx, func(c *pgpurepy.Conn) error {
					_, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (6)")
					return err
				})
			})
			if err != nil {
				return err
			}
			row, err := c.FetchOne(ctx, "SELECT count(*) FROM ext_tx")
			if err != nil {
				return err
			}
			var n int
			if err := row.Scan(&n); err != nil || n != 3 {
				return fmt.Errorf("inside: %d rows, %v", n, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := values(t); !slices.Equal(got, []int64{1, 4, 6}) {
			t.Fatalf("after savepoints: %v, want [1 4 6]", got)
		}
		// An inner success followed by an outer error: all undone.
		reset(t)
		err = x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
			if err := c.Transaction(ctx, func(c *pgpurepy.Conn) error {
				_, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (7)")
				return err
			}); err != nil {
				return err
			}
			return errInner
		})
		if !errors.Is(err, errInner) || count(t) != 0 {
			t.Fatalf("outer error after inner success: %v, %d rows", err, count(t))
		}
		// Conn.Transaction outside a transaction is a real transaction.
		err = x.Checkout(ctx, func(c *pgpurepy.Conn) error {
			row, err := c.FetchOne(ctx, "SELECT pg_backend_pid()")
			if err != nil {
				return err
			}
			var pid int64
			if err := row.Scan(&pid); err != nil {
				return err
			}
			if err := c.Transaction(ctx, func(c *pgpurepy.Conn) error {
				_, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (8)")
				return err
			}); err != nil {
				return err
			}
			err = c.Transaction(ctx, func(c *pgpurepy.Conn) error {
				if _, err := c.Execute(ctx, "INSERT INTO ext_tx VALUES (9)"); err != nil {
					return err
				}
				return errInner
			})
			if !errors.Is(err, errInner) {
				return fmt.Errorf("Transaction returned %v", err)
			}
			if st := extTxState(t, db, pid); st != "idle" {
				return fmt.Errorf("still in a transaction after Conn.Transaction returned (state %q)", st)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := values(t); !slices.Equal(got, []int64{8}) {
			t.Fatalf("after Conn.Transaction: %v, want [8]", got)
		}
		noneInUse(t)
	})

	t.Run("options", func(t *testing.T) {
		reset(t)
		var writeErr error
		err := x.CheckoutInTx(ctx, sql.TxOptions{Isolation: sql.LevelSerializable, ReadOnly: true}, func(c *pgpurepy.Conn) error {
			for setting, want := range map[string]string{"transaction_isolation": "serializable", "transaction_read_only": "on"} {
				row, err := c.FetchOne(ctx, "SHOW "+setting)
				if err != nil {
					return err
				}
				if v, _ := row.Get(setting); v != want {
					return fmt.Errorf("%s = %v, want %s", setting, v, want)
				}
			}
			_, writeErr = c.Execute(ctx, "INSERT INTO ext_tx VALUES (1)")
			return writeErr
		})
		if pgCode(writeErr) != "25006" || pgCode(err) != "25006" {
			t.Fatalf("write in a read-only transaction: %v (returned %v)", writeErr, err)
		}
		err = x.CheckoutInTx(ctx, sql.TxOptions{Isolation: sql.LevelRepeatableRead}, func(c *pgpurepy.Conn) error {
			row, err := c.FetchOne(ctx, "SHOW transaction_isolation")
			if err != nil {
				return err
			}
			if v, _ := row.Get("transaction_isolation"); v != "repeatable read" {
				return fmt.Errorf("isolation %v", v)
			}
			_, err = c.Execute(ctx, "INSERT INTO ext_tx VALUES (1)")
			return err
		})
		if err != nil || count(t) != 1 {
			t.Fatalf("repeatable read: %v", err)
		}
		// A level PostgreSQL does not have: an error before fn runs.
		err = x.CheckoutInTx(ctx, sql.TxOptions{Isolation: sql.LevelLinearizable}, func(*pgpurepy.Conn) error {
			t.Error("fn ran")
			return nil
		})
		if err == nil {
			t.Fatal("LevelLinearizable accepted")
		}
		noneInUse(t)
	})
}

// TestExtCheckoutLeavesTransactionOpen: fn begins a transaction and returns
// without ending it; the next user of the connection is not in it, and the
// work done in it is rolled back, not committed. The connection is kept.
func TestExtCheckoutLeavesTransactionOpen(t *testing.T) {
	db, dsn := openDB(t, "connection_count=1")
	x := ext(t, db)
	ctx := context.Background()
	// The pool's one connection is checked out while the state of its
	// session is looked at: the watcher is a pool of its own.
	watcher, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	mustExec(t, db, "CREATE TABLE ext_open (v int)")
	pid := extCount(t, x, "SELECT pg_backend_pid()")
	opened := x.Stats().ConnectionsOpened

	err = x.Checkout(ctx, func(c *pgpurepy.Conn) error {
		if _, err := c.Execute(ctx, "BEGIN"); err != nil {
			return err
		}
		if _, err := c.Execute(ctx, "INSERT INTO ext_open VALUES (1)"); err != nil {
			return err
		}
		if extTxState(t, watcher, pid) != "idle in transaction" {
			return errors.New("probe: BEGIN did not open a transaction")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = x.Checkout(ctx, func(c *pgpurepy.Conn) error {
		fresh := extTxState(t, watcher, pid) == "idle"
		row, err := c.FetchOne(ctx, "SELECT pg_backend_pid(), (SELECT count(*) FROM ext_open)")
		if err != nil {
			return err
		}
		var gotPID, n int64
		if err := row.Scan(&gotPID, &n); err != nil {
			return err
		}
		if gotPID != pid {
			return fmt.Errorf("backend %d, want %d: the connection was replaced", gotPID, pid)
		}
		if !fresh {
			return errors.New("the next user is inside the transaction the last one left open")
		}
		if n != 0 {
			return fmt.Errorf("%d rows: the left-open transaction was committed", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The same left over by database/sql users of the pool.
	if n := extCount(t, x, "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%' AND datname = current_database()"); n != 0 {
		t.Fatalf("%d sessions idle in transaction", n)
	}
	if s := x.Stats(); s.ConnectionsOpened != opened {
		t.Fatalf("the pool opened %d connections: the left-open transaction cost a connection", s.ConnectionsOpened-opened)
	}
}

// TestExtStatsAddUp: statements through database/sql and through the
// extension are counted by the same pool, one acquire each.
func TestExtStatsAddUp(t *testing.T) {
	db, _ := openDB(t, "connection_count=3")
	x := ext(t, db)
	extWarm(t, x)
	ctx := context.Background()
	// Let database/sql make its connection first, so both paths are warm.
	mustExec(t, db, "SELECT 1")
	before := x.Stats()

	const n, m = 7, 5
	for i := range n {
		if _, err := db.ExecContext(ctx, "SELECT $1::int", i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range m {
		if _, err := x.Execute(ctx, "SELECT $1::int", i); err != nil {
			t.Fatal(err)
		}
	}
	// One more of each kind of call, each one acquire.
	var one int
	if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	if _, err := x.FetchOne(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := tx.ExecContext(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := x.CheckoutInTransaction(ctx, func(c *pgpurepy.Conn) error {
		for range 3 {
			if _, err := c.Execute(ctx, "SELECT 1"); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	after := x.Stats()
	want := uint64(n + m + 1 + 1 + 1 + 1)
	if d := after.Acquires - before.Acquires; d != want {
		t.Fatalf("Acquires grew by %d, want %d (database/sql %d, extension %d)", d, want, n+2, m+2)
	}
	if d := after.WaitedAcquires - before.WaitedAcquires; d != 0 {
		t.Errorf("WaitedAcquires grew by %d on an idle pool", d)
	}
	if after.ConnectionsOpened != before.ConnectionsOpened {
		t.Errorf("connections opened: %d -> %d", before.ConnectionsOpened, after.ConnectionsOpened)
	}
	if after.IdleConnections != 3 || after.InUse != 0 {
		t.Errorf("gauges after: %+v", after)
	}
}

// TestExtHandles: the extension is reachable from every way of opening a
// pgpurepy *sql.DB and is the same pool.
func TestExtHandles(t *testing.T) {
	_, dsn := openDB(t, "connection_count=2")
	ctx := context.Background()

	c, err := pgpurepy.NewConnector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	x1, err := pgpurepy.Ext(db)
	if err != nil {
		t.Fatal(err)
	}
	x2 := c.Pool()
	if x1.MaxConnections() != 2 || x2.MaxConnections() != 2 {
		t.Fatalf("MaxConnections %d, %d", x1.MaxConnections(), x2.MaxConnections())
	}
	before := x2.Stats().Acquires
	if _, err := x1.Execute(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "SELECT 1")
	if d := x2.Stats().Acquires - before; d != 2 {
		t.Fatalf("Connector.Pool saw %d acquires of 2 made through Ext and the *sql.DB", d)
	}

	db2, err := pgpurepy.OpenDB(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	x3 := ext(t, db2)
	if got := extCount(t, x3, "SELECT 40 + $1::int", 2); got != 42 {
		t.Fatal(got)
	}
	before = x3.Stats().Acquires
	if _, err := x1.Execute(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if x3.Stats().Acquires != before {
		t.Fatal("the pool of one *sql.DB counted an acquire made on another")
	}

	// Closing the *sql.DB closes the pool the extension uses.
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := x3.Execute(ctx, "SELECT 1"); err == nil {
		t.Fatal("Execute on a closed pool succeeded")
	}
}
