package sqltest_test

import (
	"os"
	"testing"

	"github.com/pgpurepy/pgpurepy/sqltest"
)

func TestPair(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	p, err := sqltest.StartPair(ctx, sqltest.Options{Env: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Primary.Port() == p.Standby.Port() {
		t.Fatal("primary and standby share a port")
	}
	if got := queryValue(t, connect(t, p.Standby.DSN("")), "SELECT pg_is_in_recovery()"); got != "t" {
		t.Fatalf("standby pg_is_in_recovery() = %q", got)
	}
	if err := p.Primary.Exec(ctx, "", "CREATE TABLE ha (x int); INSERT INTO ha VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	standby := connect(t, p.Standby.DSN(""))
	waitFor(t, "replicated row", func() bool {
		v, err := tryQueryValue(ctx, standby, "SELECT count(*) FROM ha")
		return err == nil && v == "1"
	})
	if _, err := tryQueryValue(ctx, standby, "INSERT INTO ha VALUES (2) RETURNING x"); err == nil {
		t.Fatal("standby accepted a write")
	}

	if err := p.StopPrimary(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := connectErr(p.Primary.DSN("")); err == nil {
		t.Fatal("primary still answers after StopPrimary")
	}
	if err := p.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if got := queryValue(t, connect(t, p.Standby.DSN("")), "INSERT INTO ha VALUES (2) RETURNING x"); got != "2" {
		t.Fatalf("insert on promoted standby: %q", got)
	}
	if dsn, _ := p.Standby.PasswordDSN(""); dsn == "" {
		t.Error("standby has no password role")
	} else {
		queryValue(t, connect(t, dsn), "SELECT 1")
	}
	dirs := []string{p.Primary.Dir(), p.Standby.Dir()}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s left behind", d)
		}
	}
}
