package otelpgpurepy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/pgpurepy/pgpurepy"
)

// TestStatementSpans checks the spans of statements through database/sql
// and the extension: names, kind, parent, the semantic conventions'
// attributes, and db.query.text as written with arguments and sanitized
// without.
func TestStatementSpans(t *testing.T) {
	f := newFixture(t, 2)
	ctx, end := f.parent("handler")
	if _, err := f.db.ExecContext(ctx, "CREATE TABLE t (v int, s text)"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.ExecContext(ctx, "insert into t values ($1, $2), ($3, 'x')", 1, "a", 2); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := f.db.QueryRowContext(ctx, "SELECT count(*) FROM t WHERE v > 0 AND s <> 'secret'").Scan(&n); err != nil || n != 2 {
		t.Fatal(n, err)
	}
	if _, err := f.pool.Execute(ctx, "UPDATE t SET v = v + $1", 1); err != nil {
		t.Fatal(err)
	}
	rows, err := f.pool.Fetch(ctx, "WITH x AS (SELECT v FROM t) SELECT * FROM x")
	if err != nil || len(rows) != 2 {
		t.Fatal(len(rows), err)
	}
	end()
	parent := f.one(t, "handler", "")

	host := f.cfg.ConnConfig.Host
	port := int64(f.cfg.ConnConfig.Port)
	for _, tc := range []struct{ name, text, op string }{
		{"CREATE TABLE", "CREATE TABLE t (v int, s text)", "CREATE TABLE"},
		{"INSERT", "insert into t values ($1, $2), ($3, 'x')", "INSERT"},
		{"SELECT", "SELECT count(*) FROM t WHERE v > ? AND s <> ?", "SELECT"},
		{"UPDATE", "UPDATE t SET v = v + $1", "UPDATE"},
		{"SELECT", "WITH x AS (SELECT v FROM t) SELECT * FROM x", "SELECT"},
	} {
		s := f.one(t, tc.name, tc.text)
		if s.SpanKind() != trace.SpanKindClient {
			t.Errorf("%s: kind %v", tc.text, s.SpanKind())
		}
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("%s: parent %v, want the caller's span", tc.text, s.Parent().SpanID())
		}
		if s.Status().Code != codes.Unset {
			t.Errorf("%s: status %v", tc.text, s.Status())
		}
		for key, want := range map[string]any{
			"db.system.name":    "postgresql",
			"db.namespace":      f.database,
			"server.address":    host,
			"server.port":       port,
			"db.operation.name": tc.op,
		} {
			if got := attr(s, key).AsInterface(); got != want {
				t.Errorf("%s: %s = %v, want %v", tc.text, key, got, want)
			}
		}
	}
}

// TestStatementError checks a server error's span: error status, the
// SQLSTATE as db.response.status_code and error.type, and the name from
// the text's first keyword.
func TestStatementError(t *testing.T) {
	f := newFixture(t, 1)
	_, err := f.db.ExecContext(context.Background(), "select * from missing_table")
	if err == nil {
		t.Fatal("expected an error")
	}
	s := f.one(t, "SELECT", "select * from missing_table")
	if s.Status().Code != codes.Error || s.Status().Description == "" {
		t.Errorf("status %+v, want an error", s.Status())
	}
	for key, want := range map[string]string{"db.response.status_code": "42P01", "error.type": "42P01"} {
		if got := attr(s, key).AsString(); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if hasAttr(s, "db.operation.name") {
		t.Errorf("failed statement has db.operation.name %v", attr(s, "db.operation.name"))
	}
}

// TestTransactionSpans checks the spans of a committed transaction through
// database/sql and of a rolled-back one through the extension.
func TestTransactionSpans(t *testing.T) {
	f := newFixture(t, 1)
	ctx, end := f.parent("handler")
	tx, err := f.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "CREATE TABLE t (v int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES ($1)", 1); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err = f.pool.CheckoutInTx(ctx, sql.TxOptions{ReadOnly: true}, func(c *pgpurepy.Conn) error {
		if _, err := c.Execute(ctx, "SELECT v FROM t"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	end()
	parent := f.one(t, "handler", "")

	txs := f.ended(SpanTransaction)
	if len(txs) != 2 {
		t.Fatalf("%d transaction spans, want 2; have %s", len(txs), f.names())
	}
	committed, rolledBack := txs[0], txs[1]
	for _, s := range txs {
		if s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("transaction span's parent %v, want the caller's span", s.Parent().SpanID())
		}
		if s.Status().Code != codes.Unset || attr(s, "db.system.name").AsString() != "postgresql" {
			t.Errorf("transaction span: status %v, db.system.name %v", s.Status(), attr(s, "db.system.name"))
		}
	}
	if !attr(committed, "pgpurepy.transaction.committed").AsBool() || attr(committed, "pgpurepy.transaction.isolation").AsString() != "Serializable" {
		t.Errorf("committed transaction: attributes %v", committed.Attributes())
	}
	if attr(rolledBack, "pgpurepy.transaction.committed").AsBool() || !attr(rolledBack, "pgpurepy.transaction.read_only").AsBool() {
		t.Errorf("rolled-back transaction: attributes %v", rolledBack.Attributes())
	}
	// The statements of each transaction ran within its span's time, in
	// the same trace.
	for _, tc := range []struct {
		tx         sdktrace.ReadOnlySpan
		name, text string
	}{
		{committed, "CREATE TABLE", "CREATE TABLE t (v int)"},
		{committed, "INSERT", "INSERT INTO t VALUES ($1)"},
		{rolledBack, "SELECT", "SELECT v FROM t"},
	} {
		s := f.one(t, tc.name, tc.text)
		if s.Parent().SpanID() != tc.tx.SpanContext().SpanID() {
			t.Errorf("%s: parent %v, want its transaction's span", tc.text, s.Parent().SpanID())
		}
		if s.SpanContext().TraceID() != tc.tx.SpanContext().TraceID() ||
			s.StartTime().Before(tc.tx.StartTime()) || s.EndTime().After(tc.tx.EndTime()) {
			t.Errorf("%s: not within its transaction's span", tc.text)
		}
	}
}

// TestCancelSpans checks a statement cancelled by its deadline: its span
// has error.type timeout, and the recovery of its connection makes a
// cancel recovery span that says it was kept.
func TestCancelSpans(t *testing.T) {
	f := newFixture(t, 1)
	if _, err := f.db.Exec("SELECT 1"); err != nil { // connect first
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := f.db.ExecContext(ctx, "SELECT pg_sleep(5)")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pg_sleep with a timeout: %v", err)
	}
	s := f.one(t, "SELECT", "SELECT pg_sleep(?)")
	if s.Status().Code != codes.Error || attr(s, "error.type").AsString() != "timeout" {
		t.Errorf("cancelled statement: status %v, error.type %v", s.Status(), attr(s, "error.type"))
	}
	poll(t, "cancel recovery span", func() bool { return len(f.ended(SpanCancelRecovery)) == 1 })
	r := f.ended(SpanCancelRecovery)[0]
	if !attr(r, "pgpurepy.cancel.kept").AsBool() || attr(r, "pgpurepy.backend_pid").AsInt64() == 0 || r.Status().Code != codes.Unset {
		t.Errorf("cancel recovery span: status %v, attributes %v", r.Status(), r.Attributes())
	}
	// The connection was kept: the next statement runs on it, with no
	// new connect.
	if _, err := f.db.ExecContext(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.ended(SpanConnect)); n != 1 {
		t.Errorf("%d connect spans, want 1", n)
	}
}

// TestConnectSpan checks the span of a connect made for a caller: under
// the caller's span, with the backend pid, and in the create_time
// histogram.
func TestConnectSpan(t *testing.T) {
	f := newFixture(t, 1)
	ctx, end := f.parent("handler")
	var pid int64
	if err := f.db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	end()
	cs := f.ended(SpanConnect)
	if len(cs) != 1 {
		t.Fatalf("%d connect spans, want 1", len(cs))
	}
	c := cs[0]
	if got := attr(c, "pgpurepy.backend_pid").AsInt64(); got != pid {
		t.Errorf("connect span pid %d, want %d", got, pid)
	}
	if attr(c, "db.namespace").AsString() != f.database || c.SpanKind() != trace.SpanKindClient || c.Status().Code != codes.Unset {
		t.Errorf("connect span: kind %v, status %v, attributes %v", c.SpanKind(), c.Status(), c.Attributes())
	}
	if !c.Parent().IsValid() {
		t.Log("connect span is a root span (the pool connected in the background)")
	}
	h := histogram(t, f.collect(t), "db.client.connection.create_time")
	if h.Count != 1 || h.Sum <= 0 {
		t.Errorf("create_time: count %d sum %v, want one connect", h.Count, h.Sum)
	}
}

// TestConnectErrorSpan checks the span of a connect that fails.
func TestConnectErrorSpan(t *testing.T) {
	f := newFixture(t, 1)
	f.db.Close()
	cfg := f.cfg.Copy()
	cfg.ConnConfig.Database = "no_such_database"
	c, err := pgpurepy.NewConnectorConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err == nil {
		t.Fatal("ping of a missing database succeeded")
	}
	var failed sdktrace.ReadOnlySpan
	for _, s := range f.ended(SpanConnect) {
		if s.Status().Code == codes.Error {
			failed = s
		}
	}
	if failed == nil {
		t.Fatalf("no failed connect span in %s", f.names())
	}
	if attr(failed, "db.namespace").AsString() != "no_such_database" || attr(failed, "error.type").AsString() == "" {
		t.Errorf("failed connect span: attributes %v", failed.Attributes())
	}
}

// TestAcquireSpans checks that a checkout that waited for a pool of one
// gets a span under the caller's, and an immediate one none; and that the
// wait is in the wait_time histogram. The threshold is above the default so
// that a slow immediate checkout on a loaded machine cannot qualify.
func TestAcquireSpans(t *testing.T) {
	f := newFixture(t, 1, WithAcquireSpans(20*time.Millisecond))
	if _, err := f.db.Exec("SELECT 1"); err != nil { // connect first
		t.Fatal(err)
	}
	conn, err := f.db.Conn(context.Background()) // holds the only connection
	if err != nil {
		t.Fatal(err)
	}
	ctx, end := f.parent("waiter")
	done := make(chan error, 1)
	go func() {
		_, err := f.db.ExecContext(ctx, "SELECT 2")
		done <- err
	}()
	poll(t, "a waiter", func() bool { return f.pool.WaitingTasks() == 1 })
	time.Sleep(50 * time.Millisecond)
	conn.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx2, end2 := f.parent("immediate")
	if _, err := f.db.ExecContext(ctx2, "SELECT 3"); err != nil {
		t.Fatal(err)
	}
	end2()
	end()

	as := f.ended(SpanAcquire)
	if len(as) != 1 {
		t.Fatalf("%d acquire spans, want 1 (the wait); have %s", len(as), f.names())
	}
	a, parent := as[0], f.one(t, "waiter", "")
	if a.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("acquire span's parent is not the caller's span")
	}
	if d := a.EndTime().Sub(a.StartTime()); d < 40*time.Millisecond {
		t.Errorf("acquire span lasted %v, want the 50ms wait", d)
	}
	h := histogram(t, f.collect(t), "db.client.connection.wait_time")
	// Checkouts: SELECT 1, the *sql.Conn, the waiter, SELECT 3.
	if h.Count != 4 {
		t.Errorf("wait_time count %d, want 4", h.Count)
	}
	if mx, ok := h.Max.Value(); !ok || mx < 0.04 {
		t.Errorf("wait_time max %v, want the 50ms wait", mx)
	}
	if v, _ := h.Attributes.Value("db.client.connection.pool.name"); v.AsString() != DefaultPoolName {
		t.Errorf("wait_time pool name %v", v)
	}
}

// TestAcquireSpansAll checks WithAcquireSpans(0): every checkout under a
// recording span gets a span, and none outside one.
func TestAcquireSpansAll(t *testing.T) {
	f := newFixture(t, 1, WithAcquireSpans(0))
	ctx, end := f.parent("handler")
	for range 3 {
		if _, err := f.db.ExecContext(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	end()
	if _, err := f.db.Exec("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if n := len(f.ended(SpanAcquire)); n != 3 {
		t.Errorf("%d acquire spans, want 3", n)
	}
}

// TestAcquireTimeoutSpan checks a checkout whose context ends while it
// waits: a failed acquire span, and a timeout in the metrics.
func TestAcquireTimeoutSpan(t *testing.T) {
	f := newFixture(t, 1)
	unregister, err := RegisterMetrics(f.pool, WithMeterProvider(f.mp))
	if err != nil {
		t.Fatal(err)
	}
	defer unregister()
	conn, err := f.db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, end := f.parent("handler")
	wctx, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	_, err = f.db.ExecContext(wctx, "SELECT 1")
	cancel()
	end()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait with a timeout: %v", err)
	}
	as := f.ended(SpanAcquire)
	if len(as) != 1 || as[0].Status().Code != codes.Error || attr(as[0], "error.type").AsString() != "timeout" {
		t.Fatalf("acquire spans %d, want one failed with error.type timeout; have %s", len(as), f.names())
	}
	if got := intValue(t, f.collect(t), "db.client.connection.timeouts", "", ""); got != 1 {
		t.Errorf("db.client.connection.timeouts = %d, want 1", got)
	}
}

// TestQueryTextOptions checks WithoutQueryText and
// WithUnsanitizedQueryText.
func TestQueryTextOptions(t *testing.T) {
	const q = "SELECT 'literal', 42"
	f := newFixture(t, 1, WithoutQueryText())
	if _, err := f.db.Exec(q); err != nil {
		t.Fatal(err)
	}
	if s := f.one(t, "SELECT", ""); hasAttr(s, "db.query.text") {
		t.Errorf("WithoutQueryText: db.query.text %v", attr(s, "db.query.text"))
	}
	f = newFixture(t, 1, WithUnsanitizedQueryText())
	if _, err := f.db.Exec(q); err != nil {
		t.Fatal(err)
	}
	f.one(t, "SELECT", q)
	// Several statements in one text: no db.operation.name, which would be
	// the last one's.
	if _, err := f.db.Exec("CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if s := f.one(t, "CREATE", "CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); hasAttr(s, "db.operation.name") {
		t.Errorf("several statements: db.operation.name %v", attr(s, "db.operation.name"))
	}
}

// TestNotRecording checks what a statement costs the Tracer when nothing
// is sampled: no attribute work, and few allocations.
func TestNotRecording(t *testing.T) {
	for name, tp := range map[string]trace.TracerProvider{
		"noop":      noop.NewTracerProvider(),
		"never":     sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())),
		"recording": sdktrace.NewTracerProvider(),
	} {
		tr := NewTracer(WithTracerProvider(tp), WithMeterProvider(nil))
		args := []driver.NamedValue{{Ordinal: 1, Value: 1}}
		allocs := testing.AllocsPerRun(100, func() {
			ctx := tr.TraceQueryStart(context.Background(), "SELECT v FROM t WHERE id = $1", args)
			tr.TraceQueryEnd(ctx, "SELECT 1", nil)
			ctx = tr.TraceAcquireStart(context.Background())
			tr.TraceAcquireEnd(ctx, nil)
		})
		t.Logf("%s: %v allocations per statement and checkout", name, allocs)
		if name != "recording" && allocs > 3 {
			t.Errorf("%s: %v allocations per statement, want at most 3", name, allocs)
		}
	}
}

func TestTagOperation(t *testing.T) {
	for tag, want := range map[string]string{
		"SELECT 3": "SELECT", "INSERT 0 2": "INSERT", "UPDATE 0": "UPDATE", "CREATE TABLE": "CREATE TABLE",
		"BEGIN": "BEGIN", "": "", "COPY 10": "COPY", "MERGE 1": "MERGE", "42": "",
	} {
		if got := tagOperation(tag); got != want {
			t.Errorf("tagOperation(%q) = %q, want %q", tag, got, want)
		}
	}
}

func TestFirstKeyword(t *testing.T) {
	for q, want := range map[string]string{
		"SELECT 1": "SELECT", "  select 1": "SELECT", "-- c\n/* d */ (Select 1)": "SELECT",
		"With x as (select 1) select * from x": "WITH", "vacuum analyze": "VACUUM", "reindex table t": "REINDEX",
		"FrobNicate": "FROBNICATE", "": "postgresql", "  ;": "postgresql", "'x'": "postgresql",
	} {
		if got := firstKeyword(q); got != want {
			t.Errorf("firstKeyword(%q) = %q, want %q", q, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = firstKeyword("select 1") }); n != 0 {
		t.Errorf("firstKeyword allocates %v times", n)
	}
}

func TestSeveralStatements(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT 1": false, "SELECT 1;": false, "SELECT 1; -- end\n": false, "SELECT ';' ; /* ; */": false,
		"SELECT 1; SELECT 2": true, `SELECT E'\';'; SELECT 2`: true, `SELECT E'\'; SELECT 2'`: false,
		"SELECT $$;$$": false, `SELECT ";"`: false, "SELECT $1; SELECT 2": true,
	} {
		if got := severalStatements(q); got != want {
			t.Errorf("severalStatements(%q) = %v, want %v", q, got, want)
		}
	}
}

// TestPoolName checks that the pool name of WithPoolName is on the
// Tracer's histograms.
func TestPoolName(t *testing.T) {
	f := newFixture(t, 1, WithPoolName("replica"))
	if _, err := f.db.Exec("SELECT 1"); err != nil {
		t.Fatal(err)
	}
	h := histogram(t, f.collect(t), "db.client.connection.wait_time")
	if v, _ := h.Attributes.Value("db.client.connection.pool.name"); v.AsString() != "replica" {
		t.Errorf("pool name %v, want replica", v)
	}
	if v, _ := h.Attributes.Value("db.system.name"); v.AsString() != "postgresql" {
		t.Errorf("db.system.name %v, want postgresql", v)
	}
}
