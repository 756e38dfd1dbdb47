package pgpurepy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"log"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// LISTEN/NOTIFY (issue 16, item 2) on real servers: order and payloads,
// several channels and their quoting, a terminated backend, a server
// restart, a failover and a fenced primary, and how a listener ends.

// lsnBound bounds each test's listener: a listener that never delivers
// fails the test with its context's error instead of hanging it.
const lsnBound = 2 * time.Minute

// lsnPuller steps through a listener's sequence one element at a time.
type lsnPuller struct {
	t    testing.TB
	next func() (pgpurepy.Notification, error, bool)
	stop func()
}

// lsnPull starts l's range; the range stops when the test ends, if it has
// not stopped before.
func lsnPull(t testing.TB, l *pgpurepy.Listener) *lsnPuller {
	t.Helper()
	next, stop := iter.Pull2(l.Notifications())
	t.Cleanup(stop)
	return &lsnPuller{t: t, next: next, stop: stop}
}

// element returns the next element, failing the test if the sequence ended.
func (p *lsnPuller) element() (pgpurepy.Notification, error) {
	p.t.Helper()
	n, err, ok := p.next()
	if !ok {
		p.t.Fatal("the listener's sequence ended")
	}
	return n, err
}

// notification returns the next element, failing the test unless it is a
// notification on channel with payload.
func (p *lsnPuller) notification(channel, payload string) pgpurepy.Notification {
	p.t.Helper()
	n, err := p.element()
	if err != nil {
		p.t.Fatalf("want notification %q on %q, got error %v", payload, channel, err)
	}
	if n.Channel != channel || n.Payload != payload {
		p.t.Fatalf("got notification %q on %q, want %q on %q", n.Payload, n.Channel, payload, channel)
	}
	return n
}

// missed returns the next element's error, failing the test unless it
// wraps ErrNotificationsMissed.
func (p *lsnPuller) missed() error {
	p.t.Helper()
	_, err := p.element()
	if !errors.Is(err, pgpurepy.ErrNotificationsMissed) {
		p.t.Fatalf("want ErrNotificationsMissed, got %v", err)
	}
	return err
}

// lsnNotify sends payload on channel through the pool, retrying while the
// pool finds its way to the writable server after a fault.
func lsnNotify(t testing.TB, x *pgpurepy.Pool, channel, payload string) {
	t.Helper()
	deadline := time.Now().Add(resPollBound)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := x.Execute(ctx, "SELECT pg_notify($1, $2)", channel, payload)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pg_notify(%q, %q): %v", channel, payload, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lsnOtherBackends counts the client backends of the current database
// other than the one running the query: with connection_count=1, the
// listener's.
func lsnOtherBackends(t testing.TB, x *pgpurepy.Pool) int {
	t.Helper()
	row, err := x.FetchOne(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := row.Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// lsnWaitBackends polls until the listener's backend count is want.
func lsnWaitBackends(t testing.TB, x *pgpurepy.Pool, want int) {
	t.Helper()
	resPoll(t, fmt.Sprintf("%d listener backends", want), func() (bool, string) {
		n := lsnOtherBackends(t, x)
		return n == want, fmt.Sprintf("%d backends besides the pool's", n)
	})
}

// TestListenOrderAndPayloads: notifications arrive in the order they were
// committed, with their payloads and the sender's backend pid, also several
// from one transaction.
func TestListenOrderAndPayloads(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=2")
	x := ext(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), lsnBound)
	defer cancel()
	l, err := x.Listen(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	payloads := []string{"", "héllo ✓", "it's \"quoted\"\nand two lines", strings.Repeat("p", 7000)}
	for i := range 50 {
		payloads = append(payloads, fmt.Sprint(i))
	}
	var pid uint32
	err = x.Checkout(ctx, func(c *pgpurepy.Conn) error {
		row, err := c.FetchOne(ctx, "SELECT pg_backend_pid()")
		if err != nil {
			return err
		}
		if err := row.Scan(&pid); err != nil {
			return err
		}
		for _, p := range payloads {
			if _, err := c.Execute(ctx, "SELECT pg_notify('orders', $1)", p); err != nil {
				return err
			}
		}
		// One transaction, three notifications: delivered at commit, in
		// the order they were sent.
		return c.Transaction(ctx, func(c *pgpurepy.Conn) error {
			for _, p := range []string{"tx1", "tx2", "tx3"} {
				if _, err := c.Execute(ctx, "NOTIFY orders, '"+p+"'"); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	payloads = append(payloads, "tx1", "tx2", "tx3")

	p := lsnPull(t, l)
	for _, want := range payloads {
		if n := p.notification("orders", want); n.PID != pid {
			t.Fatalf("notification %q from pid %d, want the sender's %d", want, n.PID, pid)
		}
	}
}

// TestListenSeveralChannels: one listener hears every channel it was given,
// by its exact name, and no other; names are quoted, never run as SQL.
func TestListenSeveralChannels(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=2")
	x := ext(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), lsnBound)
	defer cancel()

	for _, bad := range [][]string{nil, {""}, {"a", "nul\x00byte"}} {
		if l, err := x.Listen(ctx, bad...); err == nil {
			_ = l.Close()
			t.Errorf("Listen(%q) succeeded", bad)
		}
	}
	if n := x.Stats().Listeners; n != 0 {
		t.Fatalf("failed Listen calls left %d listeners", n)
	}

	injection := `x"; CREATE TABLE pwned (); --`
	channels := []string{"a", "B", "with space", `q"uote`, injection}
	l, err := x.Listen(ctx, channels...)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var exists bool
	if err := db.QueryRowContext(ctx, "SELECT to_regclass('pwned') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("a channel name ran as SQL: table pwned exists=%v (%v)", exists, err)
	}

	for _, ch := range []string{"a", "b", "B", "c", "with space", `q"uote`, injection} {
		lsnNotify(t, x, ch, "to "+ch)
	}
	mustExec(t, db, `NOTIFY B, 'unquoted'`) // folded to b: not heard
	mustExec(t, db, `NOTIFY "B", 'quoted'`)
	lsnNotify(t, x, "a", "last")

	p := lsnPull(t, l)
	p.notification("a", "to a")
	p.notification("B", "to B")
	p.notification("with space", "to with space")
	p.notification(`q"uote`, `to q"uote`)
	p.notification(injection, "to "+injection)
	p.notification("B", "quoted")
	p.notification("a", "last")
}

// TestListenReconnectsAfterTerminate kills the listener's backend: what
// arrived before is still delivered, then the missed marker with the
// server's reason, and after it notifications arrive again.
func TestListenReconnectsAfterTerminate(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), lsnBound)
	defer cancel()
	l, err := x.Listen(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := lsnPull(t, l)

	lsnNotify(t, x, "jobs", "before")
	p.notification("jobs", "before")

	// Sent before the kill, read after it: the listener's backend writes
	// them to the socket as soon as it is signalled, and the pause lets it.
	lsnNotify(t, x, "jobs", "queued 1")
	lsnNotify(t, x, "jobs", "queued 2")
	time.Sleep(300 * time.Millisecond)
	killed, err := x.Execute(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`)
	if err != nil || killed != 1 {
		t.Fatalf("terminated %d backends (%v), want the listener's", killed, err)
	}
	p.notification("jobs", "queued 1")
	p.notification("jobs", "queued 2")
	err = p.missed()
	if pgCode(err) != "57P01" {
		t.Errorf("the marker does not carry the server's reason (57P01): %v", err)
	}
	t.Logf("marker: %v", err)

	for i := range 3 {
		lsnNotify(t, x, "jobs", fmt.Sprint("after ", i))
	}
	for i := range 3 {
		p.notification("jobs", fmt.Sprint("after ", i))
	}
	if s := x.Stats(); s.Listeners != 1 {
		t.Fatalf("Listeners = %d after the reconnect, want 1", s.Listeners)
	}
}

// TestListenServerRestart restarts the server: the listener reconnects once
// it is back (with backoff meanwhile) and says notifications were missed.
func TestListenServerRestart(t *testing.T) {
	srv := resStartServer(t, sqltest.Options{})
	db, x := resOpen(t, srv.DSN("")+"&connection_count=1")
	ctx, cancel := context.WithTimeout(context.Background(), lsnBound)
	defer cancel()
	l, err := x.Listen(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := lsnPull(t, l)
	lsnNotify(t, x, "jobs", "before")
	p.notification("jobs", "before")

	start := time.Now()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("restart took %v; marker: %v", time.Since(start).Round(time.Millisecond), p.missed())
	lsnNotify(t, x, "jobs", "after")
	p.notification("jobs", "after")
	_ = db.Close()
}

// TestListenFailover stops the primary of a pair and promotes the standby:
// the listener of a read-write DSN listing both reconnects to the new
// primary, says notifications were missed, and receives what is sent there.
func TestListenFailover(t *testing.T) {
	t.Parallel()
	pair := haStartPair(t)
	db := haOpen(t, haKV(pair.Primary, pair.Standby, "read-write", "connection_count=2"))
	x := ext(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), lsnBound)
	defer cancel()
	l, err := x.Listen(ctx, "ha")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := lsnPull(t, l)
	lsnNotify(t, x, "ha", "on the old primary")
	p.notification("ha", "on the old primary")

	if err := pair.StopPrimary(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pair.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("marker: %v", p.missed())
	lsnNotify(t, x, "ha", "on the new primary")
	n := p.notification("ha", "on the new primary")
	pid, err := haQueryValue(ctx, pair.Standby.DSN(""), fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE pid = %d", n.PID))
	if err != nil || pid != "1" {
		t.Fatalf("the sender's pid %d is not a backend of the new primary (%q, %v)", n.PID, pid, err)
	}
	if s := x.Stats(); s.Failovers == 0 {
		t.Errorf("no failover counted: %+v", s)
	}
}

// TestListenFencedPrimary fences the primary (default_transaction_read_only
// from its configuration) without stopping it, and promotes the standby.
// The listener's connection stays up, but the listener must not stay on a
// server no one can notify on: its periodic ping has the server report the
// fence, and it moves to the new primary.
func TestListenFencedPrimary(t *testing.T) {
	t.Parallel()
	pair := haStartPair(t)
	db := haOpen(t, haKV(pair.Primary, pair.Standby, "read-write", "connection_count=2"))
	x := ext(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), lsnBound)
	defer cancel()
	l, err := x.Listen(ctx, "ha")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := lsnPull(t, l)
	lsnNotify(t, x, "ha", "before the fence")
	p.notification("ha", "before the fence")

	for _, q := range []string{"ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()"} {
		if err := pair.Primary.Exec(ctx, "", q); err != nil {
			t.Fatal(err)
		}
	}
	if err := pair.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	err = p.missed()
	if !strings.Contains(err.Error(), "no longer writable") {
		t.Errorf("marker does not name the fence: %v", err)
	}
	t.Logf("marker: %v", err)
	lsnNotify(t, x, "ha", "on the new primary")
	p.notification("ha", "on the new primary")
}

// TestListenStats: the listener's connection is its own, outside the pool:
// a pool of one keeps its connection free, and Stats counts the listener
// apart. Notifications to a pool connection that ran LISTEN itself are
// dropped and disturb nothing.
func TestListenStats(t *testing.T) {
	t.Parallel()
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), lsnBound)
	defer cancel()
	extWarm(t, x)
	before := x.Stats()
	l, err := x.Listen(ctx, "stats")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := x.Stats()
	if s.Listeners != 1 || s.OpenConnections != 1 || s.IdleConnections != 1 || s.MaxConnections != 1 ||
		s.ConnectionsOpened != before.ConnectionsOpened {
		t.Fatalf("stats with a listener: %+v (before %+v)", s, before)
	}
	if n := lsnOtherBackends(t, x); n != 1 {
		t.Fatalf("%d backends besides the pool's, want the listener's", n)
	}

	// LISTEN on the pool's own connection: the notification to it is
	// dropped by pgconn, and the connection serves on.
	mustExec(t, db, "LISTEN stats")
	lsnNotify(t, x, "stats", "one")
	dbsqlCheckWorks(t, db)
	p := lsnPull(t, l)
	p.notification("stats", "one")
	mustExec(t, db, "UNLISTEN *")
	if s := x.Stats(); s.WaitedAcquires != before.WaitedAcquires {
		t.Fatalf("the pool's statements waited while a listener was open: %+v", s)
	}
}

// TestListenConfigHandler: an OnNotification set in the Config's ConnConfig
// still sees every notification, on the pool's connections (as before
// listeners existed) and on a listener's, which receives them too.
func TestListenConfigHandler(t *testing.T) {
	t.Parallel()
	cfg, err := pgpurepy.ParseConfig(sqltest.DB(t) + "&connection_count=1")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen []string
	)
	cfg.ConnConfig.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
		mu.Lock()
		seen = append(seen, n.Payload)
		mu.Unlock()
	}
	c, err := pgpurepy.NewConnectorConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	x := ext(t, db)
	ctx, cancel := context.WithTimeout(context.Background(), lsnBound)
	defer cancel()
	l, err := x.Listen(ctx, "h")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	mustExec(t, db, "LISTEN h") // on the pool's one connection
	lsnNotify(t, x, "h", "one")
	lsnPull(t, l).notification("h", "one")
	mustExec(t, db, "SELECT 1") // the pool's connection reads its copy
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []string{"one", "one"}) {
		t.Fatalf("the Config's handler saw %q, want the pool's copy and the listener's", seen)
	}
}

// TestListenCancelEndsPromptly cancels the context of a listener that is
// waiting: the range ends at once with the context's error, the server
// connection is closed, and no goroutine is left.
func TestListenCancelEndsPromptly(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	// ping_after_idle=0: nothing else wakes the wait within a second.
	db, x := resOpen(t, sqltest.DB(t)+"&connection_count=1&ping_after_idle=0")
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := x.Listen(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		for _, err := range l.Notifications() {
			if err != nil {
				ended <- err
				return
			}
		}
		ended <- nil
	}()
	lsnNotify(t, x, "c", "wakes nothing") // the range is waiting by now, or soon
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-ended:
		// Under the listener's one-second check, which would end it
		// without the wake.
		if took := time.Since(start); took > 600*time.Millisecond {
			t.Errorf("the range ended %v after the cancel", took)
		}
		assertCtxErr(t, err, context.Canceled)
	case <-time.After(extBound):
		t.Fatal("the range did not end after its context was cancelled")
	}
	lsnWaitBackends(t, x, 0)
	if n := x.Stats().Listeners; n != 0 {
		t.Fatalf("Listeners = %d after the cancel", n)
	}
	_ = db.Close()
}

// TestListenEnds: a break closes the listener; Close closes one that no
// range reads, and ends a range in progress without an error; a context
// that ends closes a listener no range reads; closing the pool ends a
// range with an error. None leaves a connection or a goroutine.
func TestListenEnds(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	db, x := resOpen(t, sqltest.DB(t)+"&connection_count=1")
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), lsnBound)
	defer cancel()

	t.Run("break", func(t *testing.T) {
		l, err := x.Listen(ctx, "e")
		if err != nil {
			t.Fatal(err)
		}
		lsnNotify(t, x, "e", "one")
		for n, err := range l.Notifications() {
			if err != nil || n.Payload != "one" {
				t.Fatalf("got %+v, %v", n, err)
			}
			break
		}
		lsnWaitBackends(t, x, 0)
		for _, err := range l.Notifications() {
			if err == nil {
				t.Fatal("a closed listener yielded a notification")
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("close idle", func(t *testing.T) {
		l, err := x.Listen(ctx, "e")
		if err != nil {
			t.Fatal(err)
		}
		if n := lsnOtherBackends(t, x); n != 1 {
			t.Fatalf("%d listener backends, want 1", n)
		}
		_ = l.Close()
		lsnWaitBackends(t, x, 0)
	})
	t.Run("close while ranging", func(t *testing.T) {
		l, err := x.Listen(ctx, "e")
		if err != nil {
			t.Fatal(err)
		}
		ended := make(chan error, 1)
		go func() {
			var last error
			for _, err := range l.Notifications() {
				last = err
			}
			ended <- last
		}()
		time.Sleep(50 * time.Millisecond)
		_ = l.Close()
		if err := <-ended; err != nil {
			t.Fatalf("the range ended with %v after Close, want no error", err)
		}
		lsnWaitBackends(t, x, 0)
	})
	t.Run("ctx ends while idle", func(t *testing.T) {
		lctx, lcancel := context.WithCancel(ctx)
		l, err := x.Listen(lctx, "e")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		lcancel()
		lsnWaitBackends(t, x, 0)
		for _, err := range l.Notifications() {
			assertCtxErr(t, err, context.Canceled)
		}
	})
	t.Run("pool closed", func(t *testing.T) {
		db, x := resOpen(t, sqltest.DB(t)+"&connection_count=1")
		l, err := x.Listen(ctx, "e")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		p := lsnPull(t, l)
		_ = db.Close()
		if _, err := p.element(); err == nil || errors.Is(err, pgpurepy.ErrNotificationsMissed) {
			t.Fatalf("the range went on after the pool was closed: %v", err)
		}
		if _, err := x.Listen(ctx, "e"); err == nil {
			t.Fatal("Listen on a closed pool succeeded")
		}
	})
	if n := x.Stats().Listeners; n != 0 {
		t.Fatalf("Listeners = %d at the end", n)
	}
	_ = db.Close()
}

// Listen gives a connection of its own that hears the channels' notifications.
// LISTEN is in effect once Listen returns, so nothing sent after it is missed;
// after a reconnect the listener says that notifications may have been missed.
func ExamplePool_Listen() {
	_, ext, done := exampleDB()
	defer done()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	l, err := ext.Listen(ctx, "accounts_changed")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	for _, id := range []string{"1", "3"} {
		if _, err := ext.Execute(ctx, "SELECT pg_notify('accounts_changed', $1)", id); err != nil {
			log.Fatal(err)
		}
	}
	seen := 0
	for n, err := range l.Notifications() {
		if errors.Is(err, pgpurepy.ErrNotificationsMissed) {
			continue // reconnected: reload what the notifications keep up to date
		}
		if err != nil {
			log.Fatal(err) // ctx ended
		}
		fmt.Println(n.Channel, n.Payload)
		if seen++; seen == 2 {
			break // closes the listener
		}
	}
	// Output:
	// accounts_changed 1
	// accounts_changed 3
}
