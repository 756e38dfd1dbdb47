package pgpurepy_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

type traceKey struct{}

// recordingTracer records what it is told, and checks that the context it
// returned from TraceQueryStart comes back to TraceQueryEnd.
type recordingTracer struct {
	mu     sync.Mutex
	starts []string
	ends   []string
	errs   []error
	lost   int
}

func (r *recordingTracer) TraceQueryStart(ctx context.Context, sql string, args []driver.NamedValue) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts = append(r.starts, sql)
	return context.WithValue(ctx, traceKey{}, sql)
}

func (r *recordingTracer) TraceQueryEnd(ctx context.Context, tag string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Value(traceKey{}) == nil {
		r.lost++
	}
	r.ends = append(r.ends, tag)
	r.errs = append(r.errs, err)
}

func TestTracer(t *testing.T) {
	cfg, err := pgpurepy.ParseConfig(sqltest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := &recordingTracer{}
	cfg.Tracer = tr
	c, err := pgpurepy.NewConnectorConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()

	mustExec(t, db, "CREATE TABLE t (v int)")
	mustExec(t, db, "INSERT INTO t VALUES ($1), ($2)", 1, 2)
	var n int
	if err := db.QueryRow("SELECT count(*) FROM t WHERE v > $1", 0).Scan(&n); err != nil || n != 2 {
		t.Fatal(n, err)
	}
	if _, err := db.Exec("SELECT * FROM missing_table"); err == nil {
		t.Fatal("expected an error")
	}
	if _, err := pgpurepy.Ext(db); err != nil {
		t.Fatal(err)
	}
	x := ext(t, db)
	if _, err := x.Execute(context.Background(), "UPDATE t SET v = v + $1", 1); err != nil {
		t.Fatal(err)
	}

	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.starts) != 5 || len(tr.ends) != 5 {
		t.Fatalf("starts %q ends %q", tr.starts, tr.ends)
	}
	want := []string{"CREATE TABLE", "INSERT 0 2", "SELECT 1", "", "UPDATE 2"}
	for i, w := range want {
		if tr.ends[i] != w {
			t.Errorf("statement %d (%s): tag %q, want %q", i, tr.starts[i], tr.ends[i], w)
		}
	}
	var pgErr *pgconn.PgError
	if !errors.As(tr.errs[3], &pgErr) || pgErr.Code != "42P01" {
		t.Errorf("failed statement traced with %v", tr.errs[3])
	}
	if tr.lost != 0 {
		t.Errorf("%d ends did not get the context their start returned", tr.lost)
	}
}
