package pgpurepy_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
)

// preparedName returns the server's name for the statement prepared on c
// for query, or "" when none is.
func preparedName(t *testing.T, c *sql.Conn, query string) string {
	t.Helper()
	var name string
	err := c.QueryRowContext(context.Background(), "SELECT name FROM pg_prepared_statements WHERE statement = $1",
		pgx.QueryExecModeSimpleProtocol, query).Scan(&name)
	if err != nil && err != sql.ErrNoRows {
		t.Fatal(err)
	}
	return name
}

// A text run once on a connection, the way code that writes its values
// into the SQL runs every statement, leaves nothing prepared on the server
// and so nothing to deallocate; a text run again is prepared under a name
// once, and every later run uses that name.
func TestTextRunOnceIsNotPrepared(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before := preparedCount(t, c)
	for i := range 20 {
		var n int
		if err := c.QueryRowContext(ctx, fmt.Sprintf("SELECT %d::int4 + 1", i)).Scan(&n); err != nil || n != i+1 {
			t.Fatalf("literal %d: %d, %v", i, n, err)
		}
		if err := c.QueryRowContext(ctx, fmt.Sprintf("SELECT $1::int4 + %d", i), 1).Scan(&n); err != nil || n != i+1 {
			t.Fatalf("argument %d: %d, %v", i, n, err)
		}
	}
	if got := preparedCount(t, c); got != before {
		t.Fatalf("%d statements prepared after 40 texts run once each, want %d", got, before)
	}

	const hot = "SELECT $1::int4 * 2 /* hot */"
	names := map[string]bool{}
	for i := range 4 {
		var n int
		if err := c.QueryRowContext(ctx, hot, i).Scan(&n); err != nil || n != 2*i {
			t.Fatalf("hot %d: %d, %v", i, n, err)
		}
		name := preparedName(t, c, hot)
		if i == 0 && name != "" {
			t.Fatalf("prepared as %q after one run", name)
		}
		if i > 0 {
			if name == "" {
				t.Fatalf("not prepared after %d runs", i+1)
			}
			names[name] = true
		}
	}
	if len(names) != 1 || preparedCount(t, c) != before+1 {
		t.Fatalf("hot text prepared as %v, %d statements in all; want one name, %d statements", names, preparedCount(t, c), before+1)
	}
}

// Texts that run once do not push the statements that run again and again
// out of the statement cache: those keep their server-side statement.
func TestTextsRunOnceKeepCachedStatements(t *testing.T) {
	db, _ := openDB(t, "statement_cache_capacity=4")
	ctx := context.Background()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const hot = "SELECT $1::int4 + 100 /* kept */"
	for range 2 {
		if _, err := c.ExecContext(ctx, hot, 1); err != nil {
			t.Fatal(err)
		}
	}
	name := preparedName(t, c, hot)
	if name == "" {
		t.Fatal("hot text not prepared after two runs")
	}
	for i := range 10 {
		if _, err := c.ExecContext(ctx, fmt.Sprintf("SELECT %d /* once */", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.ExecContext(ctx, hot, 1); err != nil {
		t.Fatal(err)
	}
	if got := preparedName(t, c, hot); got != name {
		t.Fatalf("hot text prepared as %q after texts run once, was %q", got, name)
	}
}
