package pgpurepy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// muxOpen opens a pool with multiplexing on and connection_count n, and
// waits until every connection is open and idle.
func muxOpen(t *testing.T, n int) (*sql.DB, *pgpurepy.Pool) {
	t.Helper()
	db, _ := openDB(t, "multiplexing=on", "connection_count="+strconv.Itoa(n))
	x := ext(t, db)
	extWarm(t, x)
	return db, x
}

// muxPIDs returns the server process ids of every connection of the test's
// database but the one that asks.
func muxPIDs(t *testing.T, x *pgpurepy.Pool) []int64 {
	t.Helper()
	var pids []int64
	err := x.Checkout(context.Background(), func(c *pgpurepy.Conn) error {
		rows, err := c.Fetch(context.Background(), "SELECT pid FROM pg_stat_activity WHERE datname = current_database() ORDER BY pid")
		for _, r := range rows {
			v, _ := r.Get("pid")
			pids = append(pids, v.(int64))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// Under 64 callers with random deadlines and cancels, every result that
// comes back is its own statement's, no connection is lost or replaced,
// and no result is left behind on a connection for a later statement.
func TestMuxResultsNeverCrossed(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	db, x := muxOpen(t, 5)
	before := muxPIDs(t, x)
	const callers, each = 64, 40
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				marker := g*1000 + i
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				switch rand.IntN(4) {
				case 0:
					ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(2000))*time.Microsecond)
				case 1:
					ctx, cancel = context.WithCancel(ctx)
					time.AfterFunc(time.Duration(rand.IntN(1000))*time.Microsecond, cancel)
				}
				var err error
				if i%2 == 0 {
					var got int
					err = db.QueryRowContext(ctx, "SELECT $1::int", marker).Scan(&got)
					if err == nil && got != marker {
						err = fmt.Errorf("caller %d statement %d got %d, want %d", g, i, got, marker)
					}
				} else {
					var got string
					want := strconv.Itoa(marker) + "x"
					err = db.QueryRowContext(ctx, "SELECT $1::text || 'x'", strconv.Itoa(marker)).Scan(&got)
					if err == nil && got != want {
						err = fmt.Errorf("caller %d statement %d got %q, want %q", g, i, got, want)
					}
				}
				cancel()
				if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Every connection answers its next statements with their own results.
	for i := range 200 {
		var got int
		if err := db.QueryRow("SELECT $1::int", -i).Scan(&got); err != nil || got != -i {
			t.Fatalf("after the storm: got %d, %v; want %d", got, err, -i)
		}
	}
	extWaitGauges(t, x, x.MaxConnections(), 0)
	if after := muxPIDs(t, x); !slices.Equal(before, after) {
		t.Errorf("server connections changed: %v before, %v after", before, after)
	}
	s := x.Stats()
	// Statements that ran slowly on a loaded machine may have gone to
	// connections of their own, where a deadline cancels them; the
	// connection must survive that too.
	if len(s.ConnectionsClosed) != 0 || s.ConnectionsOpened != uint64(s.MaxConnections) || s.CancelsLost != 0 {
		t.Errorf("connections replaced: %+v", s)
	}
	if s.MultiplexedStatements == 0 {
		t.Errorf("nothing multiplexed: %+v", s)
	}
	_ = db.Close()
}

// muxStats returns the multiplexer's counters.
func muxStats(x *pgpurepy.Pool) (stmts, trips, slow uint64) {
	s := x.Stats()
	return s.MultiplexedStatements, s.MultiplexRoundTrips, s.MultiplexSlowExclusive
}

// An error in one caller's statement fails that caller alone: the others
// of the same round trip get their results.
func TestMuxErrorFailsOnlyItsCaller(t *testing.T) {
	defer pgpurepy.SetMuxQuiet(false)()
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	defer pgpurepy.SetMuxSlow(time.Minute)()
	db, x := muxOpen(t, 1)
	mustExec(t, db, "CREATE TABLE mux_uniq (id int PRIMARY KEY)")
	mustExec(t, db, "INSERT INTO mux_uniq VALUES (1)")
	ctx := context.Background()
	stmts0, trips0, _ := muxStats(x)

	// Hold the only connection until every statement is queued, so that
	// the carrier takes them all in one round trip.
	const n = 30
	results := make(chan error, n)
	err := x.Checkout(ctx, func(*pgpurepy.Conn) error {
		for i := range n {
			go func() {
				var err error
				switch i % 3 {
				case 0:
					var got int
					err = db.QueryRowContext(ctx, "SELECT 10 / $1::int", i%2).Scan(&got)
					if err == nil && got != 10 {
						err = fmt.Errorf("statement %d: got %d", i, got)
					}
				case 1:
					id := 100 + i // odd i: a new row
					if i%2 == 0 {
						id = 1 // even i: a duplicate
					}
					_, err = db.ExecContext(ctx, "INSERT INTO mux_uniq VALUES ($1)", id)
				default:
					var got string
					err = db.QueryRowContext(ctx, "SELECT $1::text", strconv.Itoa(i)).Scan(&got)
					if err == nil && got != strconv.Itoa(i) {
						err = fmt.Errorf("statement %d: got %q", i, got)
					}
				}
				results <- fmt.Errorf("%d: %w", i, err)
			}()
		}
		deadline := time.Now().Add(extBound)
		for pgpurepy.MuxQueued(x) < n {
			if time.Now().After(deadline) {
				return fmt.Errorf("only %d statements queued", pgpurepy.MuxQueued(x))
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]int{}
	for range n {
		err := errors.Unwrap(<-results)
		codes[pgCode(err)]++
		if err != nil && pgCode(err) == "" {
			t.Errorf("not a server error: %v", err)
		}
	}
	// Of 30: i%3==0 divides by i%2, zero for even i (5 of 10); i%3==1
	// inserts a duplicate for even i (5 of 10).
	if codes["22012"] != 5 || codes["23505"] != 5 || codes[""] != 20 {
		t.Errorf("outcomes by SQLSTATE: %v", codes)
	}
	stmts1, trips1, _ := muxStats(x)
	if stmts1-stmts0 != n || trips1-trips0 != 1 {
		t.Errorf("%d statements in %d round trips, want %d in 1", stmts1-stmts0, trips1-trips0, n)
	}
	// Only the inserts that succeeded committed.
	var count int
	if err := db.QueryRow("SELECT count(*) FROM mux_uniq").Scan(&count); err != nil || count != 6 {
		t.Errorf("rows: %d, %v; want 6", count, err)
	}
	_ = db.Close()
}

// A statement that ran slowly when multiplexed runs on a connection of its
// own the next time, so that it holds up the others once at most, and
// comes back to the multiplexer once it ran fast there.
func TestMuxSlowStatementRoutedExclusive(t *testing.T) {
	defer pgpurepy.SetMuxQuiet(false)()
	// Well below the slow statement, well above a loaded machine's noise.
	defer pgpurepy.SetMuxSlow(100 * time.Millisecond)()
	db, x := muxOpen(t, 2)
	ctx := context.Background()
	const slow = "SELECT pg_sleep($1) /* mux-slow */"
	run := func(d float64) {
		t.Helper()
		if _, err := db.ExecContext(ctx, slow, d); err != nil {
			t.Fatal(err)
		}
	}
	stmts0, _, slow0 := muxStats(x)
	run(0.3)
	stmts1, _, slow1 := muxStats(x)
	if stmts1-stmts0 != 1 || slow1 != slow0 {
		t.Fatalf("first run: %d multiplexed, %d exclusive; want 1 and 0", stmts1-stmts0, slow1-slow0)
	}

	// The second run takes a connection of its own; statements from
	// others meanwhile are multiplexed on the other.
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(0.3)
	}()
	const fast = 20
	for i := range fast {
		var got int
		if err := db.QueryRowContext(ctx, "SELECT $1::int", i).Scan(&got); err != nil || got != i {
			t.Errorf("got %d, %v", got, err)
		}
	}
	<-done
	stmts2, _, slow2 := muxStats(x)
	if stmts2-stmts1 != fast || slow2-slow1 != 1 {
		t.Fatalf("second run: %d multiplexed, %d exclusive; want %d and 1", stmts2-stmts1, slow2-slow1, fast)
	}

	// Fast on its own connection: back to the multiplexer after that.
	run(0)
	run(0)
	stmts3, _, slow3 := muxStats(x)
	if stmts3-stmts2 != 1 || slow3-slow2 != 1 {
		t.Fatalf("after a fast run: %d multiplexed, %d exclusive; want 1 and 1", stmts3-stmts2, slow3-slow2)
	}
}

// A text whose multiplexed result was large runs on a connection of its
// own the next time, where its rows stream to the caller instead of being
// read in full by a carrier; one run in MuxLargeProbe is multiplexed again,
// and a small result there brings the text back.
func TestMuxLargeResultRoutedExclusive(t *testing.T) {
	defer pgpurepy.SetMuxQuiet(false)()
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	defer pgpurepy.SetMuxSlow(time.Minute)()
	db, x := muxOpen(t, 2)
	ctx := context.Background()
	const q = "SELECT g FROM generate_series(1, $1::int) g /* mux-large */"
	run := func(n int) {
		t.Helper()
		rows, err := db.QueryContext(ctx, q, n)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for rows.Next() {
			var g int
			if err := rows.Scan(&g); err != nil {
				t.Fatal(err)
			}
			if got++; g != got {
				t.Fatalf("row %d is %d", got, g)
			}
		}
		if err := rows.Close(); err != nil || got != n {
			t.Fatalf("%d rows, %v; want %d", got, err, n)
		}
	}
	counts := func() (stmts, large uint64) {
		s := x.Stats()
		return s.MultiplexedStatements, s.MultiplexLargeExclusive
	}
	check := func(what string, stmts0, large0 uint64, wantStmts, wantLarge uint64) {
		t.Helper()
		stmts, large := counts()
		if stmts-stmts0 != wantStmts || large-large0 != wantLarge {
			t.Fatalf("%s: %d multiplexed, %d exclusive for a large result; want %d and %d", what, stmts-stmts0, large-large0, wantStmts, wantLarge)
		}
	}

	stmts0, large0 := counts()
	run(pgpurepy.MuxLargeRows) // not large
	run(pgpurepy.MuxLargeRows)
	check("small results", stmts0, large0, 2, 0)

	stmts0, large0 = counts()
	run(pgpurepy.MuxLargeRows + 1)
	run(pgpurepy.MuxLargeRows + 1)
	check("a large result", stmts0, large0, 1, 1)

	// Small again, which only the probe finds out.
	stmts0, large0 = counts()
	for range pgpurepy.MuxLargeProbe - 2 {
		run(3)
	}
	check("before the probe", stmts0, large0, 0, pgpurepy.MuxLargeProbe-2)
	stmts0, large0 = counts()
	run(3)
	run(3)
	check("the probe and after", stmts0, large0, 2, 0)

	// Large again: the count to the next probe starts over.
	stmts0, large0 = counts()
	run(pgpurepy.MuxLargeRows + 1)
	for range pgpurepy.MuxLargeProbe - 1 {
		run(pgpurepy.MuxLargeRows + 1)
	}
	run(pgpurepy.MuxLargeRows + 1)
	check("large again", stmts0, large0, 2, pgpurepy.MuxLargeProbe-1)
	_ = db.Close()
}

// Transactions, *sql.Conn with session state, and Checkout keep one
// server connection for all their statements, multiplexable ones
// included.
func TestMuxSessionAffinity(t *testing.T) {
	db, x := muxOpen(t, 3)
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE mux_aff (a int)")

	// Keep the carriers busy on other connections meanwhile.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var n int
				_ = db.QueryRowContext(ctx, "SELECT $1::int", 1).Scan(&n)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	for range 5 {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		pid := backendPID(t, tx)
		if _, err := tx.ExecContext(ctx, "INSERT INTO mux_aff VALUES ($1)", 1); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM mux_aff").Scan(&n); err != nil || n != 1 {
			t.Fatalf("the transaction does not see its own row: %d, %v", n, err)
		}
		if got := backendPID(t, tx); got != pid {
			t.Fatalf("transaction moved from backend %d to %d", pid, got)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}

	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustExecConn := func(q string, args ...any) {
		t.Helper()
		if _, err := c.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExecConn("SET application_name = 'mux-affinity'")
	mustExecConn("CREATE TEMP TABLE mux_tmp (a int)")
	for i := range 10 {
		mustExecConn("INSERT INTO mux_tmp VALUES ($1)", i)
	}
	var n int
	var app string
	if err := c.QueryRowContext(ctx, "SELECT count(*), current_setting('application_name') FROM mux_tmp").Scan(&n, &app); err != nil || n != 10 || app != "mux-affinity" {
		t.Fatalf("*sql.Conn lost its session: %d rows, %q, %v", n, app, err)
	}

	err = x.Checkout(ctx, func(cn *pgpurepy.Conn) error {
		if _, err := cn.Execute(ctx, "CREATE TEMP TABLE mux_tmp2 (a int)"); err != nil {
			return err
		}
		for i := range 10 {
			if _, err := cn.Execute(ctx, "INSERT INTO mux_tmp2 VALUES ($1)", i); err != nil {
				return err
			}
		}
		row, err := cn.FetchOne(ctx, "SELECT count(*) FROM mux_tmp2")
		if err != nil {
			return err
		}
		if v, _ := row.Get("count"); v != int64(10) {
			return fmt.Errorf("count %v", v)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Checkout lost its session: %v", err)
	}
}

// Under concurrency the multiplexer carries several statements per round
// trip, and the pool-level calls of the extension are multiplexed too.
func TestMuxFewerRoundTripsThanStatements(t *testing.T) {
	defer pgpurepy.SetMuxQuiet(false)()
	defer pgpurepy.SetMuxSlow(time.Minute)()
	db, x := muxOpen(t, 2)
	ctx := context.Background()
	stmts0, trips0, _ := muxStats(x)
	const callers, each = 64, 20
	var wg sync.WaitGroup
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				want := int64(g*100 + i)
				var got any
				var err error
				if g%2 == 0 {
					var n int64
					err = db.QueryRowContext(ctx, "SELECT $1::int8", want).Scan(&n)
					got = n
				} else {
					var row *pgpurepy.Row
					row, err = x.FetchOne(ctx, "SELECT $1::int8 AS v", want)
					if err == nil {
						got, _ = row.Get("v")
					}
				}
				if err != nil || got != want {
					t.Errorf("got %v, %v; want %d", got, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	stmts, trips, _ := muxStats(x)
	stmts, trips = stmts-stmts0, trips-trips0
	t.Logf("%d statements in %d round trips", stmts, trips)
	if stmts != callers*each || trips >= stmts {
		t.Errorf("%d statements multiplexed in %d round trips; want %d in fewer", stmts, trips, callers*each)
	}
}

// The extension's pool-level calls work multiplexed: Execute, Fetch,
// FetchOneOrNone and Query, with column types for database/sql.
func TestMuxExtensionAndColumnTypes(t *testing.T) {
	defer pgpurepy.SetMuxQuiet(false)()
	defer pgpurepy.SetMuxSlow(time.Minute)()
	db, x := muxOpen(t, 2)
	ctx := context.Background()
	mustExec(t, db, "CREATE TABLE mux_ext (id int PRIMARY KEY, name varchar(20) NOT NULL, price numeric(8,2))")
	stmts0, _, _ := muxStats(x)
	for i := range 5 {
		if n, err := x.Execute(ctx, "INSERT INTO mux_ext VALUES ($1, $2, $3)", i, "n"+strconv.Itoa(i), "1.50"); err != nil || n != 1 {
			t.Fatalf("Execute: %d, %v", n, err)
		}
	}
	rows, err := x.Fetch(ctx, "SELECT id, name FROM mux_ext WHERE id < $1 ORDER BY id", 3)
	if err != nil || len(rows) != 3 {
		t.Fatalf("Fetch: %d rows, %v", len(rows), err)
	}
	if v, _ := rows[2].Get("name"); v != "n2" {
		t.Fatalf("Fetch: row 2 name %v", v)
	}
	if row, err := x.FetchOneOrNone(ctx, "SELECT id FROM mux_ext WHERE id = $1", 99); row != nil || err != nil {
		t.Fatalf("FetchOneOrNone: %v, %v", row, err)
	}
	n := 0
	for row, err := range x.Query(ctx, "SELECT id FROM mux_ext ORDER BY id") {
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := row.Get("id"); v != int64(n) {
			t.Fatalf("Query: row %d id %v", n, v)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("Query: %d rows", n)
	}
	if stmts, _, _ := muxStats(x); stmts-stmts0 != 8 {
		t.Fatalf("%d statements multiplexed, want 8", stmts-stmts0)
	}

	r, err := db.QueryContext(ctx, "SELECT id, name, price FROM mux_ext WHERE id = $1", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cts, err := r.ColumnTypes()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ct := range cts {
		nullable, _ := ct.Nullable()
		length, _ := ct.Length()
		p, s, _ := ct.DecimalSize()
		got = append(got, fmt.Sprintf("%s %s %v %d %d,%d", ct.DatabaseTypeName(), ct.ScanType(), nullable, length, p, s))
	}
	want := []string{"INT4 int32 false 0 0,0", "VARCHAR string false 20 0,0", "NUMERIC float64 true 0 8,2"}
	if !slices.Equal(got, want) {
		t.Errorf("column types %q, want %q", got, want)
	}
	if !r.Next() {
		t.Fatal(r.Err())
	}
	var id int
	var name, price string
	if err := r.Scan(&id, &name, &price); err != nil || id != 1 || name != "n1" || price != "1.50" {
		t.Fatalf("scan: %d %q %q %v", id, name, price, err)
	}
}

// A connection that dies under a carrier fails the statements that were in
// flight on it, with an error saying their outcome is unknown, and no
// others: those still queued run on the connection that replaces it.
func TestMuxDeadConnection(t *testing.T) {
	defer pgpurepy.SetMuxQuiet(false)()
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	defer pgpurepy.SetMuxSlow(time.Minute)()
	db, x := muxOpen(t, 1)
	admin, _ := openDB(t)
	ctx := context.Background()
	waitQueued := func(n int) {
		t.Helper()
		deadline := time.Now().Add(extBound)
		for pgpurepy.MuxQueued(x) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d statements queued, want %d", pgpurepy.MuxQueued(x), n)
			}
			time.Sleep(time.Millisecond)
		}
	}

	// One round trip: the victim, then the statements in flight behind it.
	const inFlight, late = 5, 5
	victim := make(chan error, 1)
	flights := make(chan error, inFlight)
	err := x.Checkout(ctx, func(*pgpurepy.Conn) error {
		go func() {
			_, err := db.ExecContext(ctx, "SELECT pg_sleep(30) /* mux-victim */")
			victim <- err
		}()
		waitQueued(1)
		for i := range inFlight {
			go func() {
				var got int
				flights <- db.QueryRowContext(ctx, "SELECT $1::int", i).Scan(&got)
			}()
		}
		waitQueued(1 + inFlight)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	deadline := time.Now().Add(extBound)
	for admin.QueryRow("SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%mux-victim%' AND pid <> pg_backend_pid()").Scan(&pid) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the victim never ran")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Statements queued behind the round trip in flight.
	lates := make(chan error, late)
	for i := range late {
		go func() {
			var got int
			err := db.QueryRowContext(ctx, "SELECT $1::int", 100+i).Scan(&got)
			if err == nil && got != 100+i {
				err = fmt.Errorf("got %d, want %d", got, 100+i)
			}
			lates <- err
		}()
	}
	waitQueued(late)
	mustExec(t, admin, "SELECT pg_terminate_backend($1)", pid)

	if err := <-victim; pgCode(err) != "57P01" {
		t.Errorf("victim: %v, want the server's 57P01", err)
	}
	for range inFlight {
		if err := <-flights; err == nil || pgCode(err) != "" || !strings.Contains(err.Error(), "outcome is unknown") {
			t.Errorf("statement in flight: %v, want the lost connection's error", err)
		}
	}
	for range late {
		if err := <-lates; err != nil {
			t.Errorf("statement queued behind: %v", err)
		}
	}
	if s := x.Stats(); s.ConnectionsClosed["broken"] != 1 {
		t.Errorf("closed connections: %v", s.ConnectionsClosed)
	}
	_ = db.Close()
	_ = admin.Close()
}

// What must see its own session is never multiplexed: session state,
// transaction control, the connection's identity or last sequence value,
// several statements in one text, and pgx's simple-protocol option.
func TestMuxNotMultiplexed(t *testing.T) {
	defer pgpurepy.SetMuxQuiet(false)()
	defer pgpurepy.SetMuxSlow(time.Minute)()
	db, x := muxOpen(t, 2)
	ctx := context.Background()
	mustExec(t, db, "CREATE SEQUENCE mux_seq")
	for _, tc := range []struct {
		sql  string
		args []any
		mux  bool
	}{
		{"SELECT $1::int", []any{1}, true},
		{"SELECT nextval('mux_seq')", nil, true},
		{"SELECT $1::int", []any{pgx.QueryExecModeSimpleProtocol, 1}, false},
		{"SELECT lastval()", nil, false},
		{"SELECT currval('mux_seq')", nil, false},
		{"SELECT pg_backend_pid()", nil, false},
		{"SELECT 1; SELECT 2", nil, false},
		{"SET application_name = 'mux'", nil, false},
		{"SELECT set_config('application_name', 'mux', false)", nil, false},
		{"CREATE TEMP TABLE mux_t (a int)", nil, false},
		{"SELECT pg_advisory_lock(7)", nil, false},
		{"SELECT pg_advisory_unlock(7)", nil, false},
	} {
		before, _, _ := muxStats(x)
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// lastval and currval run on a session of their own, which need
		// not be the one the multiplexed nextval ran on (no session
		// affinity): "not yet defined in this session" is theirs to say.
		if _, err := c.ExecContext(ctx, tc.sql, tc.args...); err != nil && (!strings.Contains(tc.sql, "val(") || pgCode(err) != "55000") {
			t.Errorf("%s: %v", tc.sql, err)
		}
		_ = c.Close()
		after, _, _ := muxStats(x)
		if got := after > before; got != tc.mux {
			t.Errorf("%s: multiplexed %v, want %v", tc.sql, got, tc.mux)
		}
	}
}

// The Tracer sees multiplexed statements as any other: their text, their
// command tag and their error, with its own context back.
func TestMuxTracer(t *testing.T) {
	defer pgpurepy.SetMuxQuiet(false)()
	defer pgpurepy.SetMuxSlow(time.Minute)()
	cfg, err := pgpurepy.ParseConfig(sqltest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Multiplexing = true
	tr := &recordingTracer{}
	cfg.Tracer = tr
	c, err := pgpurepy.NewConnectorConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT $1::int", 7).Scan(&n); err != nil || n != 7 {
		t.Fatalf("got %d, %v", n, err)
	}
	if _, err := db.Exec("SELECT 1 / $1::int", 0); pgCode(err) != "22012" {
		t.Fatalf("division by zero: %v", err)
	}
	if s := c.Pool().Stats(); s.MultiplexedStatements != 2 {
		t.Fatalf("%d statements multiplexed, want 2", s.MultiplexedStatements)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if !slices.Equal(tr.starts, []string{"SELECT $1::int", "SELECT 1 / $1::int"}) || !slices.Equal(tr.ends, []string{"SELECT 1", ""}) ||
		tr.errs[0] != nil || pgCode(tr.errs[1]) != "22012" || tr.lost != 0 {
		t.Errorf("traced starts %q, ends %q, errors %v, %d contexts lost", tr.starts, tr.ends, tr.errs, tr.lost)
	}
}

// One caller at a time runs on a connection of its own, as without
// multiplexing; once every connection is busy, statements are multiplexed.
func TestMuxQuietPoolRunsAlone(t *testing.T) {
	defer pgpurepy.SetMuxSlow(time.Minute)()
	db, x := muxOpen(t, 1)
	ctx := context.Background()
	// The warm-up's statement found no connection open yet: it may have
	// been multiplexed.
	stmts0, _, _ := muxStats(x)
	for i := range 10 {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT $1::int", i).Scan(&n); err != nil || n != i {
			t.Fatalf("got %d, %v", n, err)
		}
	}
	if stmts, _, _ := muxStats(x); stmts != stmts0 {
		t.Fatalf("%d statements multiplexed on a quiet pool", stmts-stmts0)
	}
	done := make(chan error, 1)
	err := x.Checkout(ctx, func(*pgpurepy.Conn) error {
		go func() {
			var n int
			done <- db.QueryRowContext(ctx, "SELECT $1::int", 42).Scan(&n)
		}()
		deadline := time.Now().Add(extBound)
		for pgpurepy.MuxQueued(x) < 1 {
			if time.Now().After(deadline) {
				return errors.New("the statement did not queue while the pool was busy")
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if stmts, _, _ := muxStats(x); stmts-stmts0 != 1 {
		t.Fatalf("%d statements multiplexed on a busy pool, want 1", stmts-stmts0)
	}
}

// A statement that finds a connection idle runs on it alone, even while a
// carrier runs: queueing it behind the carrier's round trip would make it
// wait for someone else's statement, and costs the hand-offs for nothing.
func TestMuxIdleConnectionRunsAloneWhileCarrierRuns(t *testing.T) {
	defer pgpurepy.SetMuxSlow(time.Minute)()
	db, x := muxOpen(t, 2)
	ctx := context.Background()
	stmts0, _, _ := muxStats(x)

	// Both connections checked out: the slow statement queues, and a
	// carrier takes it on the first connection given back.
	release := make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- x.Checkout(ctx, func(*pgpurepy.Conn) error { <-release; return nil })
	}()
	slow := make(chan error, 1)
	err := x.Checkout(ctx, func(*pgpurepy.Conn) error {
		deadline := time.Now().Add(extBound)
		for x.IdleConnections() > 0 {
			if time.Now().After(deadline) {
				return errors.New("the second checkout did not start")
			}
			time.Sleep(time.Millisecond)
		}
		go func() {
			_, err := db.ExecContext(ctx, "SELECT pg_sleep(1)")
			slow <- err
		}()
		for pgpurepy.MuxQueued(x) < 1 {
			if time.Now().After(deadline) {
				return errors.New("the slow statement did not queue while the pool was busy")
			}
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(extBound)
	for pgpurepy.MuxQueued(x) > 0 || pgpurepy.MuxCarriers(x) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no carrier took the slow statement")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for x.IdleConnections() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the held connection did not come back")
		}
		time.Sleep(time.Millisecond)
	}

	began := time.Now()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT $1::int", 7).Scan(&n); err != nil || n != 7 {
		t.Fatalf("got %d, %v", n, err)
	}
	if waited := time.Since(began); pgpurepy.MuxCarriers(x) == 0 {
		t.Fatalf("the carrier ended before the statement ran (after %v): nothing was tested", waited)
	}
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if stmts, _, _ := muxStats(x); stmts-stmts0 != 1 {
		t.Fatalf("%d statements multiplexed, want 1 (the slow one): the one that found a connection idle was queued behind it", stmts-stmts0)
	}
}

// A slow text whose run on a connection of its own was cut short by its
// context stays slow: the time until the cancel says nothing of how long
// it runs, and sent back to the multiplexer it would run there uncancelled
// and hold up the statements behind it, every other time.
func TestMuxCancelledSlowStatementStaysExclusive(t *testing.T) {
	defer pgpurepy.SetMuxQuiet(false)()
	defer pgpurepy.SetMuxSlow(100 * time.Millisecond)()
	db, x := muxOpen(t, 2)
	ctx := context.Background()
	const slow = "SELECT pg_sleep($1) /* mux-cut-short */"
	stmts0, _, slow0 := muxStats(x)
	if _, err := db.ExecContext(ctx, slow, 0.3); err != nil {
		t.Fatal(err)
	}
	if stmts, _, slowN := muxStats(x); stmts-stmts0 != 1 || slowN != slow0 {
		t.Fatalf("first run: %d multiplexed, %d exclusive; want 1 and 0", stmts-stmts0, slowN-slow0)
	}

	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	_, err := db.ExecContext(cctx, slow, 0.3)
	cancel()
	assertCtxErr(t, err, context.DeadlineExceeded)
	stmts1, _, slow1 := muxStats(x)
	if stmts1-stmts0 != 1 || slow1-slow0 != 1 {
		t.Fatalf("cancelled run: %d multiplexed, %d exclusive; want 1 and 1", stmts1-stmts0, slow1-slow0)
	}

	if _, err := db.ExecContext(ctx, slow, 0.3); err != nil {
		t.Fatal(err)
	}
	if stmts, _, slowN := muxStats(x); stmts != stmts1 || slowN-slow1 != 1 {
		t.Fatalf("after the cancelled run: %d multiplexed, %d exclusive; want 0 and 1", stmts-stmts1, slowN-slow1)
	}
}
