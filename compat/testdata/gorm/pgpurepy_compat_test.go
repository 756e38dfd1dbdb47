package tests_test

// This file is added by pgpurepy's compat runner (github.com/pgpurepy/pgpurepy/compat)
// to its copy of gorm's tests for the pgpurepy run, where every postgres
// dialector the tests open is given a pgpurepy *sql.DB.

import (
	"database/sql"
	"testing"

	_ "github.com/pgpurepy/pgpurepy"
)

// pgpurepyDB opens dsn with pgpurepy, for the tests that open a postgres
// dialector of their own. Like the dialectors they opened before, it is
// never closed.
func pgpurepyDB(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgpurepy", dsn)
	if err != nil {
		t.Fatal(err)
	}
	return db
}
