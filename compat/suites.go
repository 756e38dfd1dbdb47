package main

import (
	_ "embed"
	"time"
)

// driver names the two runs of every suite.
type driver string

const (
	// baseline is pgx's stdlib: the suite as shipped where it already uses
	// it, otherwise opened as "pgx".
	baseline driver = "pgx"
	// pure is the working tree's pgpurepy.
	pure driver = "pgpurepy"
)

// patch is one edit of a suite's copy: old replaced by new, where old must
// occur exactly n times (once when n is 0), so that a new upstream version
// that moved the code fails loudly instead of running unpatched. An empty
// old adds new as a new file.
type patch struct {
	file     string // relative to the source root
	old, new string
	n        int
	why      string
}

// suite is one upstream test suite, run once per driver.
type suite struct {
	name    string // as in the summary and the list files
	module  string // downloaded at version through the module proxy; "" when the source is given as a directory
	version string // the pinned version; for a suite given as a directory, the directory
	modDir  string // directory of the go.mod the tests run in, relative to the source root
	pkg     string // the package to test, relative to modDir
	timeout time.Duration
	env     func(dsn string) []string
	// require lists module@version requirements added to the copy's go.mod
	// per driver: a driver the suite does not import itself, or a newer
	// version of one it does.
	require map[driver][]string
	patches map[driver][]patch
}

// pgxRequirement is the pgx whose stdlib is the baseline of every suite:
// the version of the pgx suite, and the one pgpurepy builds on.
const pgxRequirement = "github.com/jackc/pgx/v5@v5.13.0"

//go:embed testdata/pgx-stdlib/pgpurepy_compat_test.go
var pgxOverlay string

// pgxStdlib is pgx's own database/sql test suite: the most thorough
// conformance suite for a PostgreSQL database/sql driver. The baseline is
// the suite as shipped. For pgpurepy the helpers that open a *sql.DB (and
// the two that ask a *stdlib.Conn for the server's version) are renamed
// out of the way and replaced by an added file that opens "pgpurepy".
var pgxStdlib = suite{
	name:    "pgx-stdlib",
	module:  "github.com/jackc/pgx/v5",
	version: "v5.13.0",
	pkg:     "./stdlib",
	timeout: 5 * time.Minute,
	env: func(dsn string) []string {
		return []string{"PGX_TEST_DATABASE=" + dsn}
	},
	patches: map[driver][]patch{
		pure: {
			{file: "stdlib/sql_test.go", old: "func openDB(", new: "func openDBPgxStdlib(",
				why: "openDB opens pgx's stdlib; the added file's openDB opens pgpurepy"},
			{file: "stdlib/sql_test.go", old: "func testWithAllQueryExecModes(", new: "func testWithAllQueryExecModesPgxStdlib(",
				why: "it opens pgx's stdlib in each query mode; the added file's opens pgpurepy, subtests named alike"},
			{file: "stdlib/sql_go1.27_test.go", old: "func testWithKnownOIDQueryExecModes(", new: "func testWithKnownOIDQueryExecModesPgxStdlib(",
				why: "the same for Go 1.27's tests (built only by Go 1.27)"},
			{file: "stdlib/sql_test.go", old: "func skipCockroachDB(", new: "func skipCockroachDBPgxStdlib(",
				why: "it reads a parameter status from the *stdlib.Conn; the added file's asks the server"},
			{file: "stdlib/sql_test.go", old: "func skipPostgreSQLVersionLessThan(", new: "func skipPostgreSQLVersionLessThanPgxStdlib(",
				why: "the same for the server version"},
			{file: "stdlib/pgpurepy_compat_test.go", new: pgxOverlay,
				why: "the replacements, from compat/testdata/pgx-stdlib/pgpurepy_compat_test.go"},
		},
	},
}

// sqlxSuite is sqlx's own test suite (package sqlx; MySQL and SQLite are
// switched off by its own environment variables). It opens "postgres"
// (lib/pq); the baseline opens "pgx" instead, and the pgpurepy run opens
// "pgpurepy" after telling sqlx its bind type, as a pgpurepy user does.
var sqlxSuite = suite{
	name:    "sqlx",
	module:  "github.com/jmoiron/sqlx",
	version: "v1.4.0",
	pkg:     ".",
	timeout: 5 * time.Minute,
	env: func(dsn string) []string {
		return []string{"SQLX_POSTGRES_DSN=" + dsn, "SQLX_MYSQL_DSN=skip", "SQLX_SQLITE_DSN=skip"}
	},
	require: map[driver][]string{baseline: {pgxRequirement}},
	patches: map[driver][]patch{
		baseline: {
			{file: "sqlx_test.go", old: `pgdb, err = Connect("postgres", pgdsn)`, new: `pgdb, err = Connect("pgx", pgdsn)`,
				why: `open pgx's stdlib instead of lib/pq`},
			{file: "sqlx_test.go", old: `_ "github.com/lib/pq"`, new: `_ "github.com/jackc/pgx/v5/stdlib"` + "\n\t" + `_ "github.com/lib/pq"`,
				why: `register the driver "pgx"`},
		},
		pure: {
			{file: "sqlx_test.go", old: `pgdb, err = Connect("postgres", pgdsn)`,
				new: `BindDriver("pgpurepy", DOLLAR)` + "\n\t\t" + `pgdb, err = Connect("pgpurepy", pgdsn)`,
				why: `open pgpurepy instead of lib/pq, with the bind type a pgpurepy user sets`},
			{file: "sqlx_test.go", old: `_ "github.com/lib/pq"`, new: `_ "github.com/lib/pq"` + "\n\t" + `_ "github.com/pgpurepy/pgpurepy"`,
				why: `register the driver "pgpurepy"`},
		},
	},
}

//go:embed testdata/gorm/pgpurepy_compat_test.go
var gormOverlay string

// gormSuite is gorm's tests/ module, which the module proxy does not serve:
// it runs from a gorm checkout given with -gorm. The baseline is the suite
// as shipped (GORM_DIALECT=postgres opens pgx's stdlib through
// gorm.io/driver/postgres, with PreferSimpleProtocol) but with the pgx the
// other suites use: its go.mod pins an older one, and pgpurepy's
// requirement lifts the pgpurepy run to this one anyway, so that only the
// driver differs between the runs. The pgpurepy run hands every postgres
// dialector the tests open a pgpurepy *sql.DB, as the README tells gorm
// users to.
var gormSuite = suite{
	name:    "gorm",
	modDir:  "tests",
	pkg:     ".",
	timeout: 10 * time.Minute,
	env: func(dsn string) []string {
		return []string{"GORM_DIALECT=postgres", "GORM_DSN=" + dsn}
	},
	require: map[driver][]string{baseline: {pgxRequirement}},
	patches: map[driver][]patch{
		baseline: {gormDSNPatch},
		pure: {
			gormDSNPatch,
			{file: "tests/tests_test.go",
				old: "db, err = gorm.Open(postgres.New(postgres.Config{\n" +
					"\t\t\tDSN:                  dbDSN,\n" +
					"\t\t\tPreferSimpleProtocol: true,\n" +
					"\t\t}), cfg)",
				new: "var sqlDB *sql.DB\n" +
					"\t\tif sqlDB, err = sql.Open(\"pgpurepy\", dbDSN); err != nil {\n" +
					"\t\t\treturn\n" +
					"\t\t}\n" +
					"\t\tdb, err = gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), cfg)",
				why: "OpenTestConnection: the dialector over a pgpurepy *sql.DB instead of pgx's stdlib"},
			{file: "tests/tests_test.go", old: "import (\n", new: "import (\n\t\"database/sql\"\n",
				why: "for sql.Open"},
			{file: "tests/migrate_test.go", old: gormOwnOpen, new: gormOwnOpenPgpurepy,
				why: "TestInvalidCachedPlanSimpleProtocol opens a dialector of its own: over pgpurepy too"},
			{file: "tests/table_test.go", old: gormOwnOpen, new: gormOwnOpenPgpurepy, n: 3,
				why: "so do three subtests of TestPostgresTableWithIdentifierLength"},
			{file: "tests/pgpurepy_compat_test.go", new: gormOverlay,
				why: "pgpurepyDB, from compat/testdata/gorm/pgpurepy_compat_test.go"},
		},
	},
}

// gormDSNPatch points the DSN that a few gorm tests open by themselves,
// hard-wired to gorm's docker compose, at the run's database, in both runs.
var gormDSNPatch = patch{file: "tests/tests_test.go",
	old: `postgresDSN  = "user=gorm password=gorm dbname=gorm host=localhost port=9920 sslmode=disable TimeZone=Asia/Shanghai"`,
	new: `postgresDSN  = os.Getenv("GORM_DSN")`,
	why: "the tests that open postgresDSN themselves reach the run's database (GORM_DSN)"}

// The open call of the gorm tests that open their own dialector, and its
// pgpurepy form.
const (
	gormOwnOpen         = "gorm.Open(postgres.Open(postgresDSN), "
	gormOwnOpenPgpurepy = "gorm.Open(postgres.New(postgres.Config{Conn: pgpurepyDB(t, postgresDSN)}), "
)
