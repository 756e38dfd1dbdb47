package pgpurepy

import (
	"database/sql"
	"testing"

	"github.com/pgpurepy/pgpurepy/sqltest"
)

func TestMain(m *testing.M) { sqltest.Main(m) }

// openDB opens a *sql.DB on a fresh database of the package's server and
// closes it when the test ends. extra is appended to the DSN's query.
func openDB(t testing.TB, extra ...string) (*sql.DB, string) {
	t.Helper()
	dsn := sqltest.DB(t)
	for _, e := range extra {
		dsn += "&" + e
	}
	db, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, dsn
}

// mustExec runs a statement and fails the test on error.
func mustExec(t testing.TB, db interface {
	Exec(string, ...any) (sql.Result, error)
}, query string, args ...any) {
	t.Helper()
	if _, err := db.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
