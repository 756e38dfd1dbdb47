package sqltest_test

import (
	"errors"
	"testing"

	"github.com/pgpurepy/pgpurepy/sqltest"
)

func TestPgbouncer(t *testing.T) {
	t.Parallel()
	s := sqltest.Shared(t)
	db := dbName(t, sqltest.DB(t))
	b, err := sqltest.StartPgbouncer(testContext(t), s, "transaction",
		map[string]string{"server_idle_timeout": "5", "default_pool_size": "3"})
	if errors.Is(err, sqltest.ErrNoPgbouncer) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn := connect(t, b.DSN(db))
	if got := queryValue(t, conn, "SELECT current_database()"); got != db {
		t.Errorf("through pgbouncer: current_database() = %q, want %q", got, db)
	}
	admin := connect(t, b.DSN("pgbouncer"))
	res, err := admin.Exec(testContext(t), "SHOW CONFIG").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, row := range res[0].Rows {
		found[string(row[0])] = string(row[1])
	}
	if found["pool_mode"] != "transaction" || found["server_idle_timeout"] != "5" || found["default_pool_size"] != "3" {
		t.Errorf("settings not applied: pool_mode=%q server_idle_timeout=%q default_pool_size=%q",
			found["pool_mode"], found["server_idle_timeout"], found["default_pool_size"])
	}
	if b.Log() == "" {
		t.Error("empty pgbouncer log")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := connectErr(b.DSN(db)); err == nil {
		t.Error("pgbouncer still answers after Close")
	}
}
