package sqltest_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, dsn string) *pgconn.PgConn {
	t.Helper()
	conn, err := pgconn.Connect(testContext(t), dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// queryValue returns the first column of the first row of the last result.
func queryValue(t *testing.T, conn *pgconn.PgConn, sql string) string {
	t.Helper()
	v, err := tryQueryValue(testContext(t), conn, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

func tryQueryValue(ctx context.Context, conn *pgconn.PgConn, sql string) (string, error) {
	res, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return "", err
	}
	last := res[len(res)-1]
	if len(last.Rows) == 0 {
		return "", errors.New("no rows")
	}
	return string(last.Rows[0][0]), nil
}

func dbName(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

func TestNewDatabaseDistinctAndDropped(t *testing.T) {
	s := sqltest.Shared(t)
	var names []string
	t.Run("two", func(t *testing.T) {
		dsn1, dsn2 := sqltest.DB(t), s.NewDatabase(t)
		n1, n2 := dbName(t, dsn1), dbName(t, dsn2)
		if n1 == n2 {
			t.Fatalf("same database twice: %s", n1)
		}
		names = append(names, n1, n2)
		c1, c2 := connect(t, dsn1), connect(t, dsn2)
		if got := queryValue(t, c1, "SELECT current_database()"); got != n1 {
			t.Errorf("current_database() = %q, want %q", got, n1)
		}
		queryValue(t, c1, "CREATE TABLE only_in_one (x int); SELECT 1")
		if got := queryValue(t, c2, "SELECT count(*) FROM pg_class WHERE relname = 'only_in_one'"); got != "0" {
			t.Errorf("table of the first database visible in the second")
		}
		// An open session must not prevent the drop.
	})
	admin := connect(t, s.DSN(""))
	for _, n := range names {
		if got := queryValue(t, admin, "SELECT count(*) FROM pg_database WHERE datname = '"+n+"'"); got != "0" {
			t.Errorf("database %s was not dropped", n)
		}
	}
}

func TestPasswordDSN(t *testing.T) {
	s := sqltest.Shared(t)
	db := dbName(t, sqltest.DB(t))
	dsn, pw := s.PasswordDSN(db)
	if dsn == "" {
		t.Skip("no password role on an external server")
	}
	conn := connect(t, dsn)
	if got := queryValue(t, conn, "SELECT current_user"); got != "pgpurepy_pw" {
		t.Errorf("current_user = %q", got)
	}
	queryValue(t, conn, "CREATE TABLE t (x int); SELECT 1") // owns objects in public

	wrong := strings.Replace(dsn, pw, "wrong-password", 1)
	_, err := pgconn.Connect(testContext(t), wrong)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("wrong password: got %v, want SQLSTATE 28P01", err)
	}
	if !strings.Contains(queryValue(t, connect(t, s.DSN("")),
		"SELECT rolpassword FROM pg_authid WHERE rolname = 'pgpurepy_pw'"), "SCRAM-SHA-256") {
		t.Error("password is not stored as SCRAM")
	}
}

func TestExternalDSN(t *testing.T) {
	shared := sqltest.Shared(t)
	for _, tc := range []struct{ name, dsn, wantSuffix string }{
		{"url", shared.DSN(""), "/mydb?sslmode=disable"},
		{"keyword", "host=127.0.0.1 port=" + itoa(shared.Port()) + " user=postgres sslmode=disable", " dbname='mydb'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sqltest.Start(testContext(t), sqltest.Options{Env: []string{"PGPUREPY_TEST_DSN=" + tc.dsn}})
			if err != nil {
				t.Fatal(err)
			}
			if s.Dir() != "" || s.BinDir() != "" || s.Log() != "" {
				t.Errorf("external server has a directory or log")
			}
			if s.Host() != "127.0.0.1" || s.Port() != shared.Port() {
				t.Errorf("host/port = %s:%d", s.Host(), s.Port())
			}
			if got := s.DSN("mydb"); !strings.HasSuffix(got, tc.wantSuffix) {
				t.Errorf("DSN(mydb) = %q, want suffix %q", got, tc.wantSuffix)
			}
			if dsn, _ := s.PasswordDSN(""); dsn != "" {
				t.Errorf("external PasswordDSN = %q", dsn)
			}
			if err := s.Restart(testContext(t)); !errors.Is(err, sqltest.ErrNotLocal) {
				t.Errorf("Restart on external: %v, want ErrNotLocal", err)
			}
			dsn := s.NewDatabase(t)
			if got := queryValue(t, connect(t, dsn), "SELECT current_database()"); got != dbName(t, dsn) {
				t.Errorf("connected to %q", got)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// Close must not have stopped the shared server.
			queryValue(t, connect(t, shared.DSN("")), "SELECT 1")
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestLifecycle(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s, err := sqltest.Start(ctx, sqltest.Options{
		Env:          []string{}, // no PGPUREPY_TEST_DSN
		ServerConfig: map[string]string{"work_mem": "7MB"},
		HBA:          []string{"host all nobody 127.0.0.1/32 reject"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dir, port := s.Dir(), s.Port()
	if got := queryValue(t, connect(t, s.DSN("")), "SHOW work_mem"); got != "7MB" {
		t.Errorf("work_mem = %q", got)
	}
	if !strings.Contains(s.Log(), "ready to accept connections") {
		t.Errorf("log: %q", s.Log())
	}
	if _, err := pgconn.Connect(ctx, strings.Replace(s.DSN(""), "postgres@", "nobody@", 1)); err == nil ||
		!strings.Contains(err.Error(), "rejects connection") {
		t.Errorf("extra HBA line not applied: %v", err)
	}

	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pgconn.Connect(ctx, s.DSN("")); err == nil {
		t.Fatal("connected to a stopped server")
	}
	if err := s.StartAgain(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Port() != port {
		t.Errorf("port changed")
	}
	conn := connect(t, s.DSN(""))
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tryQueryValue(ctx, conn, "SELECT 1"); err == nil {
		t.Error("session survived a restart")
	}

	if err := s.AppendConfig("work_mem = '9MB'"); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendHBA(true, "host all postgres 127.0.0.1/32 reject"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pgconn.Connect(ctx, s.DSN("")); err == nil {
		t.Error("prepended HBA reject line not applied")
	}
	// The helpers use the Unix socket and still work.
	if err := s.Exec(ctx, "", "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendHBA(true, "host all postgres 127.0.0.1/32 trust"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := queryValue(t, connect(t, s.DSN("")), "SHOW work_mem"); got != "9MB" {
		t.Errorf("work_mem after reload = %q", got)
	}
	path, err := s.WriteFile("extra.conf", []byte("work_mem = '11MB'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendConfig("include '" + path + "'"); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := queryValue(t, connect(t, s.DSN("")), "SHOW work_mem"); got != "11MB" {
		t.Errorf("work_mem from WriteFile = %q", got)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists: %v", dir, err)
	}
	if _, err := pgconn.Connect(ctx, s.DSN("")); err == nil {
		t.Error("server still answers after Close")
	}
	if err := s.Restart(ctx); err == nil {
		t.Error("Restart after Close succeeded")
	}
}

func TestStartFailureHasLog(t *testing.T) {
	t.Parallel()
	_, err := sqltest.Start(testContext(t), sqltest.Options{
		Env:          []string{},
		ServerConfig: map[string]string{"shared_buffers": "not-a-size"},
	})
	if err == nil {
		t.Fatal("started with a bad setting")
	}
	if !strings.Contains(err.Error(), "shared_buffers") || !strings.HasPrefix(err.Error(), "sqltest: ") {
		t.Errorf("error without log tail: %v", err)
	}
}

// connectErr connects and closes, returning the connection error.
func connectErr(dsn string) (struct{}, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn)
	if err == nil {
		c.Close(ctx)
	}
	return struct{}{}, err
}
