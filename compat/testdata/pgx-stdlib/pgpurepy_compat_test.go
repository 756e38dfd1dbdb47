package stdlib_test

// This file is added by pgpurepy's compat runner (github.com/pgpurepy/pgpurepy/compat)
// to its copy of pgx's stdlib tests for the pgpurepy run. The runner renames
// pgx's own helpers that open a *sql.DB or reach into a *stdlib.Conn
// (openDB, testWithAllQueryExecModes, testWithKnownOIDQueryExecModes,
// skipCockroachDB, skipPostgreSQLVersionLessThan) so that these take their
// place; every test body is pgx's, unchanged.

import (
	"database/sql"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	_ "github.com/pgpurepy/pgpurepy"
)

// pgpurepyQueryModes maps pgx's query modes to pgpurepy's two: pgx's
// statement cache uses named prepared statements, like pgpurepy's
// "prepare"; the others use unnamed statements (or none), which is
// pgpurepy's "describe". The subtests keep pgx's names.
var pgpurepyQueryModes = map[pgx.QueryExecMode]string{
	pgx.QueryExecModeCacheStatement: "prepare",
	pgx.QueryExecModeCacheDescribe:  "describe",
	pgx.QueryExecModeDescribeExec:   "describe",
	pgx.QueryExecModeExec:           "describe",
	pgx.QueryExecModeSimpleProtocol: "describe",
}

// openPgpurepy opens PGX_TEST_DATABASE with pgpurepy, in queryMode when it
// is not "".
func openPgpurepy(t testing.TB, queryMode string) *sql.DB {
	t.Helper()
	u, err := url.Parse(os.Getenv("PGX_TEST_DATABASE"))
	require.NoError(t, err)
	if queryMode != "" {
		q := u.Query()
		q.Set("query_mode", queryMode)
		u.RawQuery = q.Encode()
	}
	db, err := sql.Open("pgpurepy", u.String())
	require.NoError(t, err)
	return db
}

// openDB replaces pgx's openDB. pgx's options cannot apply to another
// driver; the tests that pass them are in compat/not-applicable.txt.
func openDB(t testing.TB, opts ...stdlib.OptionOpenDB) *sql.DB {
	t.Helper()
	if len(opts) > 0 {
		t.Fatal("pgx stdlib options do not apply to pgpurepy")
	}
	return openPgpurepy(t, "")
}

// testWithAllQueryExecModes replaces pgx's helper of the same name.
func testWithAllQueryExecModes(t *testing.T, f func(t *testing.T, db *sql.DB)) {
	testWithModes(t, f, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol)
}

// testWithKnownOIDQueryExecModes replaces pgx's helper of the same name,
// which only Go 1.27's tests use.
func testWithKnownOIDQueryExecModes(t *testing.T, f func(t *testing.T, db *sql.DB)) {
	testWithModes(t, f, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec)
}

func testWithModes(t *testing.T, f func(t *testing.T, db *sql.DB), modes ...pgx.QueryExecMode) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			db := openPgpurepy(t, pgpurepyQueryModes[mode])
			defer func() {
				require.NoError(t, db.Close())
			}()
			f(t, db)
			ensureDBValid(t, db)
		})
	}
}

// skipCockroachDB replaces pgx's, which reads a parameter status from the
// *pgx.Conn behind the *sql.Conn: it asks the server instead.
func skipCockroachDB(t testing.TB, db *sql.DB, msg string) {
	var version string
	require.NoError(t, db.QueryRow("select version()").Scan(&version))
	if strings.Contains(version, "CockroachDB") {
		t.Skip(msg)
	}
}

// skipPostgreSQLVersionLessThan replaces pgx's, which reads server_version
// from the *pgx.Conn: it asks the server instead.
func skipPostgreSQLVersionLessThan(t testing.TB, db *sql.DB, minVersion int64) {
	var major int64
	require.NoError(t, db.QueryRow("select current_setting('server_version_num')::int8 / 10000").Scan(&major))
	if major < minVersion {
		t.Skipf("Test requires PostgreSQL v%d+", minVersion)
	}
}
