package pgpurepy_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

// openConfig opens a *sql.DB on a Config from dsn that edit adjusts, and
// closes it when the test ends.
func openConfig(t testing.TB, dsn string, edit func(*pgpurepy.Config)) *sql.DB {
	t.Helper()
	cfg, err := pgpurepy.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	c, err := pgpurepy.NewConnectorConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestSessionStateReset leaves session state behind in every way a holder
// of the extension's Checkout can, and checks that the next holder of the
// same server connection finds none of it, while the connection and the
// statements the driver prepared stay. Through database/sql the state
// stays, as with every driver: code reuses a temporary table across
// statements on a pool of one.
func TestSessionStateReset(t *testing.T) {
	dsn := sqltest.DB(t)
	db, x := resOpen(t, dsn+"&connection_count=1")
	other, _ := resOpen(t, dsn)
	ctx := context.Background()

	mustExec(t, db, "CREATE TEMP TABLE kept (v int)")
	mustExec(t, db, "INSERT INTO kept VALUES (1)")

	pid := backendPID(t, db)
	prepared := preparedCount(t, db)
	var before string
	if err := db.QueryRowContext(ctx, "SELECT current_setting('application_name')").Scan(&before); err != nil {
		t.Fatal(err)
	}
	err := x.Checkout(ctx, func(c *pgpurepy.Conn) error {
		for _, q := range []string{
			"SET application_name = 'mine'",
			"CREATE TEMP TABLE scratch (v int)",
			"LISTEN somewhere",
			"SELECT pg_advisory_lock(7)",
		} {
			if _, err := c.Execute(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var state struct {
		setting      string
		listening    int
		temp, lockOK bool
	}
	err = x.Checkout(ctx, func(c *pgpurepy.Conn) error {
		row, err := c.FetchOne(ctx, "SELECT current_setting('application_name') AS s, (SELECT count(*) FROM pg_listening_channels()) AS l, to_regclass('pg_temp.scratch') IS NOT NULL AS t")
		if err != nil {
			return err
		}
		return row.Scan(&state.setting, &state.listening, &state.temp)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.QueryRowContext(ctx, "SELECT pg_try_advisory_lock(7)").Scan(&state.lockOK); err != nil {
		t.Fatal(err)
	}
	if state.setting != before || state.listening != 0 || state.temp || !state.lockOK {
		t.Fatalf("left behind by a Checkout: %+v", state)
	}
	if got := backendPID(t, db); got != pid {
		t.Fatalf("the connection was replaced (pid %d -> %d) instead of reset", pid, got)
	}
	if got := preparedCount(t, db); got < prepared {
		t.Fatalf("the reset deallocated the driver's statements: %d, was %d", got, prepared)
	}
}

// TestAfterConnectRunsAgainAfterReset sets the session up in pgconn's
// AfterConnect: a reset of session state restores that setup.
func TestAfterConnectRunsAgainAfterReset(t *testing.T) {
	var runs atomic.Int64
	db := openConfig(t, sqltest.DB(t)+"&connection_count=1", func(cfg *pgpurepy.Config) {
		cfg.ConnConfig.AfterConnect = func(ctx context.Context, pg *pgconn.PgConn) error {
			runs.Add(1)
			_, err := pg.Exec(ctx, "SET application_name = 'set-up'").ReadAll()
			return err
		}
	})
	x := ext(t, db)
	ctx := context.Background()
	if _, err := x.Execute(ctx, "SET application_name = 'changed'"); err != nil {
		t.Fatal(err)
	}
	row, err := x.FetchOne(ctx, "SELECT current_setting('application_name') AS a")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := row.Get("a"); v != "set-up" {
		t.Fatalf("after the reset: %v", v)
	}
	if n := runs.Load(); n != 2 {
		t.Fatalf("AfterConnect ran %d times, want 2 (connect and reset)", n)
	}
}

// TestBeforeConnectRotatesPassword gives each new connection the password
// of the moment, as a secrets manager or an IAM token would, and changes
// it on the server: connections opened after the change use the new one.
// The Config's own settings are never changed by the hook.
func TestBeforeConnectRotatesPassword(t *testing.T) {
	srv := sqltest.Shared(t)
	dsn := sqltest.DB(t)
	admin, _ := resOpen(t, dsn)
	ctx := context.Background()
	role := secRandom(t, "rotate")
	if err := srv.AppendHBA(true, fmt.Sprintf("host all %s 127.0.0.1/32 scram-sha-256", role)); err != nil {
		t.Skipf("needs a server from local binaries: %v", err)
	}
	if err := srv.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, admin, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'first'", role))
	t.Cleanup(func() { _, _ = admin.Exec("DROP ROLE " + role) })

	var password atomic.Value
	password.Store("first")
	var cfgSeen *pgconn.Config
	db := openConfig(t, strings.Replace(dsn, "//postgres@", "//"+role+"@", 1)+"&connection_count=1", func(cfg *pgpurepy.Config) {
		cfgSeen = cfg.ConnConfig
		cfg.BeforeConnect = func(ctx context.Context, cc *pgconn.Config) error {
			pw := password.Load().(string)
			if pw == "" {
				return errors.New("no password in the vault")
			}
			cc.Password = pw
			return nil
		}
	})
	who := func() (string, error) {
		var v string
		err := db.QueryRowContext(ctx, "SELECT current_user").Scan(&v)
		return v, err
	}
	if v, err := who(); err != nil || v != role {
		t.Fatalf("with the first password: %q, %v", v, err)
	}
	mustExec(t, admin, fmt.Sprintf("ALTER ROLE %s PASSWORD 'second'", role))
	password.Store("second")
	mustExec(t, admin, fmt.Sprintf("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '%s'", role))
	resPoll(t, "the new connection with the rotated password", func() (bool, string) {
		v, err := who()
		return err == nil && v == role, fmt.Sprint(v, err)
	})
	if cfgSeen.Password != "" {
		t.Fatalf("BeforeConnect changed the Config's own settings: password %q", cfgSeen.Password)
	}

	password.Store("")
	mustExec(t, admin, fmt.Sprintf("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '%s'", role))
	var err error
	resPoll(t, "the hook's error", func() (bool, string) {
		_, err = who()
		return err != nil && strings.Contains(err.Error(), "no password in the vault"), fmt.Sprint(err)
	})
}

// TestMinConnections opens the pool's connections before its first
// statement.
func TestMinConnections(t *testing.T) {
	db, _ := openDB(t, "connection_count=3", "min_connections=2")
	x := ext(t, db)
	resPoll(t, "connections opened before any statement", func() (bool, string) {
		s := x.Stats()
		return s.OpenConnections == 3 && s.Acquires == 0, fmt.Sprintf("%+v", s)
	})
	if _, err := pgpurepy.NewConnector(sqltest.DB(t) + "&connection_count=2&min_connections=3"); err == nil || !strings.Contains(err.Error(), "min_connections") {
		t.Fatalf("min_connections above connection_count: %v", err)
	}
}

// TestConnPgConn uses the raw connection inside a Checkout, also with a
// statement cancelled by its context, and goes on with the same connection.
func TestConnPgConn(t *testing.T) {
	db, _ := openDB(t, "connection_count=1")
	x := ext(t, db)
	ctx := context.Background()
	err := x.Checkout(ctx, func(c *pgpurepy.Conn) error {
		pg := c.PgConn()
		res, err := pg.Exec(ctx, "SELECT pg_backend_pid()").ReadAll()
		if err != nil {
			return err
		}
		pid := string(res[0].Rows[0][0])
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err = pg.Exec(cctx, "SELECT pg_sleep(5)").ReadAll()
		cancel()
		if err == nil {
			return errors.New("the cancelled statement succeeded")
		}
		row, err := c.FetchOne(ctx, "SELECT pg_backend_pid()::text AS pid")
		if err != nil {
			return fmt.Errorf("after the cancel: %w", err)
		}
		if v, _ := row.Get("pid"); v != pid {
			return fmt.Errorf("the connection changed from %s to %v", pid, v)
		}
		if res, err := c.PgConn().Exec(ctx, "SELECT 1").ReadAll(); err != nil || string(res[0].Rows[0][0]) != "1" {
			return fmt.Errorf("PgConn again: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := x.Stats(); s.CancelsKept != 1 || s.ConnectionsOpened != 1 {
		t.Fatalf("the cancel did not keep the connection: %+v", s)
	}
}
