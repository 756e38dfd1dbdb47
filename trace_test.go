package pgpurepy_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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

// eventTracer records every event of the optional tracer interfaces, each
// end with whether it got the context of its start.
type eventTracer struct {
	recordingTracer
	emu    sync.Mutex
	events []string
}

var _ interface {
	pgpurepy.TxTracer
	pgpurepy.AcquireTracer
	pgpurepy.ConnectTracer
	pgpurepy.CancelTracer
} = (*eventTracer)(nil)

type eventKey struct{}

func (e *eventTracer) add(ev string) {
	e.emu.Lock()
	defer e.emu.Unlock()
	e.events = append(e.events, ev)
}

func (e *eventTracer) start(ctx context.Context, ev string) context.Context {
	e.add(ev)
	return context.WithValue(ctx, eventKey{}, ev)
}

func (e *eventTracer) end(ctx context.Context, ev string) {
	if ctx.Value(eventKey{}) == nil {
		ev += " (lost context)"
	}
	e.add(ev)
}

func (e *eventTracer) TraceTxStart(ctx context.Context, opts sql.TxOptions) context.Context {
	return e.start(ctx, "tx start "+opts.Isolation.String())
}

func (e *eventTracer) TraceTxEnd(ctx context.Context, committed bool, err error) {
	e.end(ctx, fmt.Sprintf("tx end committed=%v err=%v", committed, err != nil))
}

func (e *eventTracer) TraceAcquireStart(ctx context.Context) context.Context {
	return e.start(ctx, "acquire start")
}

func (e *eventTracer) TraceAcquireEnd(ctx context.Context, err error) {
	e.end(ctx, fmt.Sprintf("acquire end err=%v", err != nil))
}

func (e *eventTracer) TraceConnectStart(ctx context.Context, cc *pgconn.Config) context.Context {
	return e.start(ctx, "connect start "+cc.Database)
}

func (e *eventTracer) TraceConnectEnd(ctx context.Context, pid uint32, err error) {
	e.end(ctx, fmt.Sprintf("connect end pid=%v err=%v", pid != 0, err != nil))
}

func (e *eventTracer) TraceCancelEnd(pid uint32, kept bool) {
	e.add(fmt.Sprintf("cancel end pid=%v kept=%v", pid != 0, kept))
}

// TestTracerEvents has a Tracer that also implements the optional tracer
// interfaces watch a connect, checkouts, a committed and a rolled-back
// transaction and a cancelled statement.
func TestTracerEvents(t *testing.T) {
	dsn := sqltest.DB(t)
	tr := &eventTracer{}
	db := openConfig(t, dsn+"&connection_count=1", func(cfg *pgpurepy.Config) { cfg.Tracer = tr })
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	tx, err = db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = tx.Rollback()
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = db.ExecContext(cctx, "SELECT pg_sleep(5)")
	cancel()
	assertCtxErr(t, err, context.DeadlineExceeded)
	resPoll(t, "the cancel's end traced", func() (bool, string) {
		tr.emu.Lock()
		defer tr.emu.Unlock()
		return slices.Contains(tr.events, "cancel end pid=true kept=true"), fmt.Sprint(tr.events)
	})
	tr.emu.Lock()
	defer tr.emu.Unlock()
	for _, want := range []string{
		"connect start " + resDBName(t, dsn), "connect end pid=true err=false",
		"acquire start", "acquire end err=false",
		"tx start Serializable", "tx end committed=true err=false",
		"tx start Default", "tx end committed=false err=false",
	} {
		if !slices.Contains(tr.events, want) {
			t.Errorf("no event %q in %q", want, tr.events)
		}
	}
	for _, ev := range tr.events {
		if strings.Contains(ev, "lost context") {
			t.Errorf("%s", ev)
		}
	}
}
