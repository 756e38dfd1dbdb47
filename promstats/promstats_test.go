package promstats

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"expvar"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/pgpurepy/pgpurepy"
	"github.com/pgpurepy/pgpurepy/sqltest"
)

func TestMain(m *testing.M) { sqltest.Main(m) }

// openPool opens a pool of n connections on a fresh database.
func openPool(t *testing.T, n int) (*sql.DB, *pgpurepy.Pool) {
	t.Helper()
	cfg, err := pgpurepy.ParseConfig(sqltest.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnectionCount = n
	c, err := pgpurepy.NewConnectorConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	db.SetMaxIdleConns(0)
	t.Cleanup(func() { db.Close() })
	return db, c.Pool()
}

// gather registers c on a pedantic registry and returns the gathered values
// by metric name (and reason label for the closed counter).
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" {
					name += "{" + lp.GetValue() + "}"
				}
			}
			out[name] = value(mf.GetType(), m)
		}
	}
	return out
}

func value(typ dto.MetricType, m *dto.Metric) float64 {
	if typ == dto.MetricType_COUNTER {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func TestCollectorRealPool(t *testing.T) {
	db, ext := openPool(t, 3)
	ctx := context.Background()
	for range 10 {
		if _, err := db.ExecContext(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	// One cancelled statement that keeps its connection.
	qctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := db.ExecContext(qctx, "SELECT pg_sleep(5)")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pg_sleep with a timeout: %v", err)
	}
	// The connection goes back to the pool once the cancel has settled,
	// in the background; the pool fills in the background too, and the
	// gauges below are read once both are done.
	for deadline := time.Now().Add(10 * time.Second); ext.Stats().InUse != 0 || ext.Stats().Opening != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("connection not back after the cancel: %+v", ext.Stats())
		}
	}

	c := NewCollector(ext)
	// 21 unlabelled series and one per close reason.
	if n := testutil.CollectAndCount(c); n < 23+len(knownCloseReasons) {
		t.Errorf("CollectAndCount = %d, want at least %d", n, 23+len(knownCloseReasons))
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	got := gather(t, c)
	st := ext.Stats()
	for name, want := range map[string]float64{
		"pgpurepy_pool_max_connections":                3,
		"pgpurepy_pool_waiting_tasks":                  0,
		"pgpurepy_pool_in_use_connections":             0,
		"pgpurepy_pool_recovering_connections":         0,
		"pgpurepy_pool_opening_connections":            0,
		"pgpurepy_pool_connection_deficit":             0,
		"pgpurepy_named_statements":                    1, // query_mode=auto, no pooler
		"pgpurepy_failovers_total":                     0,
		"pgpurepy_failover_replaced_connections_total": 0,
		"pgpurepy_stale_statement_retries_total":       0,
		"pgpurepy_standby_connections":                 0, // one host: no standby pool
		"pgpurepy_standby_statements_total":            0,
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	for _, name := range []string{
		"pgpurepy_pool_open_connections", "pgpurepy_pool_idle_connections",
		"pgpurepy_pool_acquires_total", "pgpurepy_pool_connections_opened_total",
		"pgpurepy_cancel_requests_total", "pgpurepy_cancels_kept_total",
	} {
		if got[name] < 1 {
			t.Errorf("%s = %v, want at least 1", name, got[name])
		}
	}
	if got["pgpurepy_pool_acquires_total"] < 11 {
		t.Errorf("pgpurepy_pool_acquires_total = %v, want at least 11", got["pgpurepy_pool_acquires_total"])
	}
	if got["pgpurepy_cancels_lost_total"] != 0 {
		t.Errorf("pgpurepy_cancels_lost_total = %v, want 0", got["pgpurepy_cancels_lost_total"])
	}
	if got["pgpurepy_pool_connections_opened_total"] > float64(st.MaxConnections) {
		t.Errorf("pgpurepy_pool_connections_opened_total = %v, more than the pool's %d", got["pgpurepy_pool_connections_opened_total"], st.MaxConnections)
	}
}

func TestCollectorWaitersAndClosed(t *testing.T) {
	db, ext := openPool(t, 1)
	ctx := context.Background()
	conn, err := db.Conn(ctx) // holds the only connection
	if err != nil {
		t.Fatal(err)
	}
	c := NewCollector(ext, WithConstLabels(prometheus.Labels{"pool": "test"}))

	done := make(chan error, 1)
	go func() {
		_, err := db.ExecContext(ctx, "SELECT 1")
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for ext.WaitingTasks() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	got := gather(t, c)
	if got["pgpurepy_pool_waiting_tasks"] != 1 || got["pgpurepy_pool_in_use_connections"] != 1 {
		t.Errorf("with one waiter: waiting %v, in use %v; want 1, 1",
			got["pgpurepy_pool_waiting_tasks"], got["pgpurepy_pool_in_use_connections"])
	}
	time.Sleep(20 * time.Millisecond)
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got = gather(t, c)
	if got["pgpurepy_pool_waited_acquires_total"] < 1 || got["pgpurepy_pool_wait_seconds_total"] <= 0.01 {
		t.Errorf("after one wait: waited %v, wait seconds %v", got["pgpurepy_pool_waited_acquires_total"], got["pgpurepy_pool_wait_seconds_total"])
	}

	// Closing the pool closes its connection with reason pool_closed,
	// which shows up as a labelled counter.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	got = gather(t, c)
	if got["pgpurepy_pool_connections_closed_total{pool_closed}"] != 1 {
		t.Errorf("connections_closed_total{reason=pool_closed} = %v, want 1 (have %v)",
			got["pgpurepy_pool_connections_closed_total{pool_closed}"], got)
	}

	// The constant label is on every metric.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || (lp.GetName() == "pool" && lp.GetValue() == "test")
			}
			if !found {
				t.Errorf("%s has no pool=\"test\" label", mf.GetName())
			}
		}
	}
}

// TestCollectorExposition checks names, help texts, types and values
// against a fixed snapshot, and that a scrape takes one snapshot.
func TestCollectorExposition(t *testing.T) {
	var calls atomic.Int32
	c := newCollector(func() pgpurepy.Stats {
		calls.Add(1)
		return pgpurepy.Stats{
			MaxConnections: 5, IdleConnections: 2, WaitingTasks: 1, OpenConnections: 5, InUse: 3, Recovering: 1,
			Acquires: 100, WaitedAcquires: 7, WaitDuration: 1500 * time.Millisecond, CanceledAcquires: 1,
			ConnectionsOpened: 6, ConnectFailures: 2,
			ConnectionsClosed: map[string]uint64{"broken": 1, "other_reason": 2},
			CancelsSent:       4, CancelsKept: 3, CancelsLost: 1,
			Opening: 2, Deficit: 1, Failovers: 3, ReplacedForFailover: 4,
			NamedStatements: true, StaleStatementRetries: 9,
			StandbyStatements: 11, StandbyConnections: 2,
			MultiplexedStatements: 120, MultiplexRoundTrips: 10, MultiplexSlowExclusive: 2, MultiplexLargeExclusive: 5,
		}
	})
	want := `
# HELP pgpurepy_cancel_requests_total Total number of cancel requests sent to the server.
# TYPE pgpurepy_cancel_requests_total counter
pgpurepy_cancel_requests_total 4
# HELP pgpurepy_cancels_kept_total Total number of cancelled statements after which the connection went on serving.
# TYPE pgpurepy_cancels_kept_total counter
pgpurepy_cancels_kept_total 3
# HELP pgpurepy_cancels_lost_total Total number of cancelled statements after which the connection had to be closed.
# TYPE pgpurepy_cancels_lost_total counter
pgpurepy_cancels_lost_total 1
# HELP pgpurepy_failover_replaced_connections_total Total number of connections closed because their server is no longer writable.
# TYPE pgpurepy_failover_replaced_connections_total counter
pgpurepy_failover_replaced_connections_total 4
# HELP pgpurepy_failovers_total Total number of changes of the writable server seen by a pool that asks for one (target_session_attrs=read-write or primary).
# TYPE pgpurepy_failovers_total counter
pgpurepy_failovers_total 3
# HELP pgpurepy_multiplex_large_exclusive_total Total number of multiplexable statements run on a connection of their own because their text's last multiplexed result was large.
# TYPE pgpurepy_multiplex_large_exclusive_total counter
pgpurepy_multiplex_large_exclusive_total 5
# HELP pgpurepy_multiplex_round_trips_total Total number of round trips that carried multiplexed statements; statements per round trip is the batch depth.
# TYPE pgpurepy_multiplex_round_trips_total counter
pgpurepy_multiplex_round_trips_total 10
# HELP pgpurepy_multiplex_slow_exclusive_total Total number of multiplexable statements run on a connection of their own because their text ran slowly last time.
# TYPE pgpurepy_multiplex_slow_exclusive_total counter
pgpurepy_multiplex_slow_exclusive_total 2
# HELP pgpurepy_multiplexed_statements_total Total number of statements sent on shared connections (multiplexing=on).
# TYPE pgpurepy_multiplexed_statements_total counter
pgpurepy_multiplexed_statements_total 120
# HELP pgpurepy_named_statements 1 while the pool prepares named statements, 0 while it runs unnamed ones (query_mode=describe, or auto after a pooler lost one).
# TYPE pgpurepy_named_statements gauge
pgpurepy_named_statements 1
# HELP pgpurepy_pool_acquires_total Total number of connection checkouts.
# TYPE pgpurepy_pool_acquires_total counter
pgpurepy_pool_acquires_total 100
# HELP pgpurepy_pool_canceled_acquires_total Total number of checkouts whose context ended while waiting.
# TYPE pgpurepy_pool_canceled_acquires_total counter
pgpurepy_pool_canceled_acquires_total 1
# HELP pgpurepy_pool_connect_failures_total Total number of failed connection attempts.
# TYPE pgpurepy_pool_connect_failures_total counter
pgpurepy_pool_connect_failures_total 2
# HELP pgpurepy_pool_connection_deficit Number of connections the pool is short of its size (connection_count) after failed connects.
# TYPE pgpurepy_pool_connection_deficit gauge
pgpurepy_pool_connection_deficit 1
# HELP pgpurepy_pool_connections_closed_total Total number of connections closed, by reason.
# TYPE pgpurepy_pool_connections_closed_total counter
pgpurepy_pool_connections_closed_total{reason="broken"} 1
pgpurepy_pool_connections_closed_total{reason="idle_time"} 0
pgpurepy_pool_connections_closed_total{reason="keepalive"} 0
pgpurepy_pool_connections_closed_total{reason="lifetime"} 0
pgpurepy_pool_connections_closed_total{reason="other_reason"} 2
pgpurepy_pool_connections_closed_total{reason="pool_closed"} 0
pgpurepy_pool_connections_closed_total{reason="unhealthy"} 0
# HELP pgpurepy_pool_connections_opened_total Total number of connections opened.
# TYPE pgpurepy_pool_connections_opened_total counter
pgpurepy_pool_connections_opened_total 6
# HELP pgpurepy_pool_idle_connections Number of open connections not checked out.
# TYPE pgpurepy_pool_idle_connections gauge
pgpurepy_pool_idle_connections 2
# HELP pgpurepy_pool_in_use_connections Number of connections checked out: by a statement, a transaction, a *sql.Conn, a Checkout, or a recovery after a cancel.
# TYPE pgpurepy_pool_in_use_connections gauge
pgpurepy_pool_in_use_connections 3
# HELP pgpurepy_pool_max_connections Number of connections the pool keeps open (connection_count).
# TYPE pgpurepy_pool_max_connections gauge
pgpurepy_pool_max_connections 5
# HELP pgpurepy_pool_open_connections Number of open connections, idle plus in use.
# TYPE pgpurepy_pool_open_connections gauge
pgpurepy_pool_open_connections 5
# HELP pgpurepy_pool_opening_connections Number of connections being dialled.
# TYPE pgpurepy_pool_opening_connections gauge
pgpurepy_pool_opening_connections 2
# HELP pgpurepy_pool_recovering_connections Number of checked-out connections being cleaned up after a cancelled statement; they return to the pool by themselves.
# TYPE pgpurepy_pool_recovering_connections gauge
pgpurepy_pool_recovering_connections 1
# HELP pgpurepy_pool_wait_seconds_total Total time spent waiting for a connection, in seconds.
# TYPE pgpurepy_pool_wait_seconds_total counter
pgpurepy_pool_wait_seconds_total 1.5
# HELP pgpurepy_pool_waited_acquires_total Total number of checkouts that had to wait for a connection.
# TYPE pgpurepy_pool_waited_acquires_total counter
pgpurepy_pool_waited_acquires_total 7
# HELP pgpurepy_pool_waiting_tasks Number of callers waiting for a connection.
# TYPE pgpurepy_pool_waiting_tasks gauge
pgpurepy_pool_waiting_tasks 1
# HELP pgpurepy_stale_statement_retries_total Total number of statements run again, described afresh, because the server lost their named statement or their result type changed.
# TYPE pgpurepy_stale_statement_retries_total counter
pgpurepy_stale_statement_retries_total 9
# HELP pgpurepy_standby_connections Number of open connections of the standby pool, for the statements marked with PreferStandby.
# TYPE pgpurepy_standby_connections gauge
pgpurepy_standby_connections 2
# HELP pgpurepy_standby_statements_total Total number of statements marked with PreferStandby that ran on a standby.
# TYPE pgpurepy_standby_statements_total counter
pgpurepy_standby_statements_total 11
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("one scrape called Stats %d times, want 1", n)
	}
}

func TestExpvar(t *testing.T) {
	db, ext := openPool(t, 2)
	if _, err := db.ExecContext(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	Expvar("pgpurepy_test_pool", ext)
	v := expvar.Get("pgpurepy_test_pool")
	if v == nil {
		t.Fatal("expvar pgpurepy_test_pool not published")
	}
	var st pgpurepy.Stats
	if err := json.Unmarshal([]byte(v.String()), &st); err != nil {
		t.Fatalf("expvar value %s: %v", v.String(), err)
	}
	if st.MaxConnections != 2 || st.Acquires < 1 {
		t.Errorf("expvar stats = %+v, want MaxConnections 2 and Acquires >= 1", st)
	}
}

// TestCollectorStatements checks pgpurepy_named_statements in the query
// modes, and pgpurepy_stale_statement_retries_total after a cached
// statement's result type changed under it (a column more: in describe
// mode the cached result formats no longer fit either).
func TestCollectorStatements(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		named float64
	}{{pgpurepy.QueryModePrepare, 1}, {pgpurepy.QueryModeDescribe, 0}} {
		t.Run(tc.mode, func(t *testing.T) {
			cfg, err := pgpurepy.ParseConfig(sqltest.DB(t) + "&connection_count=1&query_mode=" + tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			c, err := pgpurepy.NewConnectorConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(c)
			defer db.Close()
			ctx := context.Background()
			q := "SELECT * FROM stale"
			// q runs twice before the ALTER: a text is cached from its
			// second run.
			for _, stmt := range []string{"CREATE TABLE stale (a int, b int)", "INSERT INTO stale VALUES (1, 2)", q, q,
				"ALTER TABLE stale ADD COLUMN c int", q} {
				rows, err := db.QueryContext(ctx, stmt)
				if err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
				rows.Close()
			}
			got := gather(t, NewCollector(c.Pool()))
			if got["pgpurepy_named_statements"] != tc.named {
				t.Errorf("pgpurepy_named_statements = %v, want %v", got["pgpurepy_named_statements"], tc.named)
			}
			if got["pgpurepy_stale_statement_retries_total"] != 1 {
				t.Errorf("pgpurepy_stale_statement_retries_total = %v, want 1", got["pgpurepy_stale_statement_retries_total"])
			}
		})
	}
}
