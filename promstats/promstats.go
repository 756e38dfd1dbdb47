// Package promstats exposes the statistics of a pgpurepy pool as Prometheus
// metrics, and as an expvar variable for programs without Prometheus.
//
//	ext, _ := pgpurepy.Ext(db)
//	prometheus.MustRegister(promstats.NewCollector(ext))
//	http.Handle("/metrics", promhttp.Handler())
//
// It is a module of its own so that the driver does not depend on
// github.com/prometheus/client_golang.
//
// # Metrics
//
// Each scrape takes one [pgpurepy.Pool.Stats] snapshot, so the values of one
// scrape are consistent with each other. Gauges:
//
//	pgpurepy_pool_max_connections         connections the pool keeps (connection_count)
//	pgpurepy_pool_open_connections        open connections, idle plus in use
//	pgpurepy_pool_idle_connections        open connections not checked out
//	pgpurepy_pool_in_use_connections      connections checked out (including database/sql's idle ones)
//	pgpurepy_pool_recovering_connections  checked-out connections being cleaned up after a cancelled statement
//	pgpurepy_pool_opening_connections     connections being dialled
//	pgpurepy_pool_connection_deficit      connections the pool is short of its size after failed connects
//	pgpurepy_pool_waiting_tasks           callers waiting for a connection
//	pgpurepy_named_statements             1 while the pool prepares named statements, 0 while it runs unnamed ones
//	pgpurepy_standby_connections          open connections of the standby pool (pgpurepy.PreferStandby)
//
// Counters:
//
//	pgpurepy_pool_acquires_total                 checkouts
//	pgpurepy_pool_waited_acquires_total          checkouts that had to wait
//	pgpurepy_pool_wait_seconds_total             time spent waiting for a checkout
//	pgpurepy_pool_canceled_acquires_total        waits that ended with the caller's context
//	pgpurepy_pool_connections_opened_total       successful connects
//	pgpurepy_pool_connect_failures_total         failed connects
//	pgpurepy_pool_connections_closed_total       closed connections, by label reason (broken, unhealthy, lifetime, idle_time, keepalive, pool_closed, ...)
//	pgpurepy_cancel_requests_total               cancel requests sent to the server
//	pgpurepy_cancels_kept_total                  cancellations after which the connection was kept
//	pgpurepy_cancels_lost_total                  cancellations after which the connection was closed
//	pgpurepy_failovers_total                     changes of the writable server (target_session_attrs=read-write or primary)
//	pgpurepy_failover_replaced_connections_total connections closed because their server is no longer writable
//	pgpurepy_stale_statement_retries_total       statements run again, described afresh, after the server lost their named statement or their result type changed
//	pgpurepy_standby_statements_total            statements marked with pgpurepy.PreferStandby that ran on a standby
//
// Useful queries: the in-use share
// pgpurepy_pool_in_use_connections / pgpurepy_pool_max_connections, the mean
// wait per waited checkout
// rate(pgpurepy_pool_wait_seconds_total[5m]) / rate(pgpurepy_pool_waited_acquires_total[5m]),
// and reconnect churn rate(pgpurepy_pool_connections_opened_total[5m]),
// which stays at zero in a healthy steady state.
//
// For several pools in one process, register one Collector per pool with a
// distinguishing constant label: NewCollector(ext, WithConstLabels(prometheus.Labels{"pool": "replica"})).
package promstats

import (
	"expvar"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgpurepy/pgpurepy"
)

// knownCloseReasons are the reasons of pgpurepy.Stats.ConnectionsClosed
// that the pool uses today. They are exported as zero until they happen, so
// that rate() and increase() see the first one; other reasons appear when
// they first occur.
var knownCloseReasons = []string{"broken", "unhealthy", "lifetime", "idle_time", "keepalive", "pool_closed"}

// Collector is a prometheus.Collector for one pgpurepy pool. It is safe for
// concurrent use; each Collect takes one Stats snapshot.
type Collector struct {
	stats func() pgpurepy.Stats

	maxConns, openConns, idleConns, inUseConns, recovering, waiting *prometheus.Desc
	opening, deficit, namedStatements, standbyConns                 *prometheus.Desc

	acquires, waitedAcquires, waitSeconds, canceledAcquires *prometheus.Desc
	opened, connectFailures, closed                         *prometheus.Desc
	cancelsSent, cancelsKept, cancelsLost                   *prometheus.Desc
	failovers, replacedForFailover, staleRetries            *prometheus.Desc
	standbyStatements                                       *prometheus.Desc
	muxStatements, muxRoundTrips                            *prometheus.Desc
	muxSlowExclusive, muxLargeExclusive                     *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// Option configures a Collector.
type Option func(*options)

type options struct {
	constLabels prometheus.Labels
}

// WithConstLabels adds labels with fixed values to every metric of the
// Collector, such as {"pool": "primary"} to tell several pools apart.
func WithConstLabels(labels prometheus.Labels) Option {
	return func(o *options) {
		if o.constLabels == nil {
			o.constLabels = prometheus.Labels{}
		}
		for k, v := range labels {
			o.constLabels[k] = v
		}
	}
}

// NewCollector returns a Collector for the pool ext (from pgpurepy.Ext or
// Connector.Pool). Register it with a prometheus.Registerer.
func NewCollector(ext *pgpurepy.Pool, opts ...Option) *Collector {
	return newCollector(ext.Stats, opts...)
}

// New is NewCollector(ext, WithConstLabels(constLabels)); constLabels may
// be nil.
func New(ext *pgpurepy.Pool, constLabels prometheus.Labels) *Collector {
	return NewCollector(ext, WithConstLabels(constLabels))
}

func newCollector(stats func() pgpurepy.Stats, opts ...Option) *Collector {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, o.constLabels)
	}
	return &Collector{
		stats: stats,

		maxConns:        d("pgpurepy_pool_max_connections", "Number of connections the pool keeps open (connection_count)."),
		openConns:       d("pgpurepy_pool_open_connections", "Number of open connections, idle plus in use."),
		idleConns:       d("pgpurepy_pool_idle_connections", "Number of open connections not checked out."),
		inUseConns:      d("pgpurepy_pool_in_use_connections", "Number of connections checked out: by a statement, a transaction, a *sql.Conn, a Checkout, or a recovery after a cancel."),
		recovering:      d("pgpurepy_pool_recovering_connections", "Number of checked-out connections being cleaned up after a cancelled statement; they return to the pool by themselves."),
		waiting:         d("pgpurepy_pool_waiting_tasks", "Number of callers waiting for a connection."),
		opening:         d("pgpurepy_pool_opening_connections", "Number of connections being dialled."),
		deficit:         d("pgpurepy_pool_connection_deficit", "Number of connections the pool is short of its size (connection_count) after failed connects."),
		namedStatements: d("pgpurepy_named_statements", "1 while the pool prepares named statements, 0 while it runs unnamed ones (query_mode=describe, or auto after a pooler lost one)."),
		standbyConns:    d("pgpurepy_standby_connections", "Number of open connections of the standby pool, for the statements marked with PreferStandby."),

		acquires:            d("pgpurepy_pool_acquires_total", "Total number of connection checkouts."),
		waitedAcquires:      d("pgpurepy_pool_waited_acquires_total", "Total number of checkouts that had to wait for a connection."),
		waitSeconds:         d("pgpurepy_pool_wait_seconds_total", "Total time spent waiting for a connection, in seconds."),
		canceledAcquires:    d("pgpurepy_pool_canceled_acquires_total", "Total number of checkouts whose context ended while waiting."),
		opened:              d("pgpurepy_pool_connections_opened_total", "Total number of connections opened."),
		connectFailures:     d("pgpurepy_pool_connect_failures_total", "Total number of failed connection attempts."),
		closed:              d("pgpurepy_pool_connections_closed_total", "Total number of connections closed, by reason.", "reason"),
		cancelsSent:         d("pgpurepy_cancel_requests_total", "Total number of cancel requests sent to the server."),
		cancelsKept:         d("pgpurepy_cancels_kept_total", "Total number of cancelled statements after which the connection went on serving."),
		cancelsLost:         d("pgpurepy_cancels_lost_total", "Total number of cancelled statements after which the connection had to be closed."),
		failovers:           d("pgpurepy_failovers_total", "Total number of changes of the writable server seen by a pool that asks for one (target_session_attrs=read-write or primary)."),
		replacedForFailover: d("pgpurepy_failover_replaced_connections_total", "Total number of connections closed because their server is no longer writable."),
		staleRetries:        d("pgpurepy_stale_statement_retries_total", "Total number of statements run again, described afresh, because the server lost their named statement or their result type changed."),
		standbyStatements:   d("pgpurepy_standby_statements_total", "Total number of statements marked with PreferStandby that ran on a standby."),
		muxStatements:       d("pgpurepy_multiplexed_statements_total", "Total number of statements sent on shared connections (multiplexing=on)."),
		muxRoundTrips:       d("pgpurepy_multiplex_round_trips_total", "Total number of round trips that carried multiplexed statements; statements per round trip is the batch depth."),
		muxSlowExclusive:    d("pgpurepy_multiplex_slow_exclusive_total", "Total number of multiplexable statements run on a connection of their own because their text ran slowly last time."),
		muxLargeExclusive:   d("pgpurepy_multiplex_large_exclusive_total", "Total number of multiplexable statements run on a connection of their own because their text's last multiplexed result was large."),
	}
}

// Describe sends the descriptors of all the Collector's metrics.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.maxConns, c.openConns, c.idleConns, c.inUseConns, c.recovering, c.waiting,
		c.opening, c.deficit, c.namedStatements, c.standbyConns,
		c.acquires, c.waitedAcquires, c.waitSeconds, c.canceledAcquires,
		c.opened, c.connectFailures, c.closed,
		c.cancelsSent, c.cancelsKept, c.cancelsLost,
		c.failovers, c.replacedForFailover, c.staleRetries,
		c.standbyStatements,
		c.muxStatements, c.muxRoundTrips, c.muxSlowExclusive, c.muxLargeExclusive,
	} {
		ch <- d
	}
}

// Collect takes one Stats snapshot and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(c.maxConns, s.MaxConnections)
	gauge(c.openConns, s.OpenConnections)
	gauge(c.idleConns, s.IdleConnections)
	gauge(c.inUseConns, s.InUse)
	gauge(c.recovering, s.Recovering)
	gauge(c.waiting, s.WaitingTasks)
	gauge(c.opening, s.Opening)
	gauge(c.deficit, s.Deficit)
	named := 0
	if s.NamedStatements {
		named = 1
	}
	gauge(c.namedStatements, named)
	gauge(c.standbyConns, s.StandbyConnections)

	counter(c.acquires, float64(s.Acquires))
	counter(c.waitedAcquires, float64(s.WaitedAcquires))
	counter(c.waitSeconds, s.WaitDuration.Seconds())
	counter(c.canceledAcquires, float64(s.CanceledAcquires))
	counter(c.opened, float64(s.ConnectionsOpened))
	counter(c.connectFailures, float64(s.ConnectFailures))
	for _, reason := range knownCloseReasons {
		if _, ok := s.ConnectionsClosed[reason]; !ok {
			counter(c.closed, 0, reason)
		}
	}
	for reason, n := range s.ConnectionsClosed {
		counter(c.closed, float64(n), reason)
	}
	counter(c.cancelsSent, float64(s.CancelsSent))
	counter(c.cancelsKept, float64(s.CancelsKept))
	counter(c.cancelsLost, float64(s.CancelsLost))
	counter(c.failovers, float64(s.Failovers))
	counter(c.replacedForFailover, float64(s.ReplacedForFailover))
	counter(c.staleRetries, float64(s.StaleStatementRetries))
	counter(c.standbyStatements, float64(s.StandbyStatements))
	counter(c.muxStatements, float64(s.MultiplexedStatements))
	counter(c.muxRoundTrips, float64(s.MultiplexRoundTrips))
	counter(c.muxSlowExclusive, float64(s.MultiplexSlowExclusive))
	counter(c.muxLargeExclusive, float64(s.MultiplexLargeExclusive))
}

// Expvar publishes the pool's statistics as the expvar variable name, an
// expvar.Func returning ext.Stats(), for programs that serve /debug/vars
// instead of Prometheus metrics. The value is the JSON form of
// pgpurepy.Stats, with WaitDuration in nanoseconds. Like expvar.Publish, it
// panics when name is already published.
//
// Without expvar, pgpurepy.Stats also logs as is:
// logger.Info("pool", slog.Any("stats", ext.Stats())).
func Expvar(name string, ext *pgpurepy.Pool) {
	expvar.Publish(name, expvar.Func(func() any { return ext.Stats() }))
}
