package pgpurepy_test

import (
	"context"
	"testing"
)

func TestSmoke(t *testing.T) {
	db, _ := openDB(t)
	ctx := context.Background()
	var n int
	if err := db.QueryRowContext(ctx, "SELECT $1::int4 + 1", 41).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 42 {
		t.Fatalf("got %d", n)
	}
	var s string
	if err := db.QueryRowContext(ctx, "SELECT 'hello'").Scan(&s); err != nil || s != "hello" {
		t.Fatal(s, err)
	}
}
