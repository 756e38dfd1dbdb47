package pgpurepy

import "time"

// MaxConnections is the number of connections the pool keeps (the
// connection_count DSN key).
func (x *Pool) MaxConnections() int { return x.c.sh.cfg.ConnectionCount }

// IdleConnections is the number of open connections not checked out right
// now.
func (x *Pool) IdleConnections() int { return x.c.pool.Stats().Idle }

// WaitingTasks is the number of callers blocked waiting for a connection
// right now.
func (x *Pool) WaitingTasks() int { return x.c.pool.Stats().Waiting }

// Stats is one consistent snapshot of the pool, for dashboards.
type Stats struct {
	// MaxConnections, IdleConnections and WaitingTasks are the gauges of the
	// methods of the same names.
	MaxConnections  int
	IdleConnections int
	WaitingTasks    int
	// OpenConnections is idle plus in use; InUse are checked out (by a
	// statement, a transaction, a *sql.Conn, a Checkout, or a recovery);
	// Recovering, of those, are being cleaned up after a cancelled
	// statement and go back to the pool by themselves; Opening are being
	// dialled; Deficit is how many the pool is short of MaxConnections after
	// failures.
	OpenConnections int
	InUse           int
	Recovering      int
	Opening         int
	Deficit         int

	// Acquires counts checkouts; WaitedAcquires those that had to wait, for
	// WaitDuration in total; CanceledAcquires those whose context ended
	// while waiting.
	Acquires         uint64
	WaitedAcquires   uint64
	WaitDuration     time.Duration
	CanceledAcquires uint64

	// ConnectionsOpened counts successful connects, ConnectFailures failed
	// ones, and ConnectionsClosed closed connections by reason ("broken",
	// "unhealthy", "lifetime", "idle_time", "pool_closed", ...).
	ConnectionsOpened uint64
	ConnectFailures   uint64
	ConnectionsClosed map[string]uint64

	// CancelsSent counts cancel requests sent to the server; CancelsKept the
	// cancellations after which the connection went on serving; CancelsLost
	// those after which it had to be closed.
	CancelsSent uint64
	CancelsKept uint64
	CancelsLost uint64

	// Failovers counts changes of the writable server seen by a pool whose
	// DSN asks for one (target_session_attrs=read-write or primary);
	// ReplacedForFailover the connections closed because they were on a
	// server that is no longer writable.
	Failovers           uint64
	ReplacedForFailover uint64

	// NamedStatements reports whether the pool prepares named statements:
	// true in query_mode=prepare, false in describe, and in auto true until
	// a pooler lost one (see QueryModeAuto). StaleStatementRetries counts
	// statements that ran again, described afresh, because the server lost
	// their named statement or their result type changed; the failed
	// attempt had run nothing.
	NamedStatements       bool
	StaleStatementRetries uint64

	// Listeners is the number of open listeners (Pool.Listen). Each holds
	// a server connection of its own, outside the pool: it takes no
	// connection from the pool and is not counted in MaxConnections,
	// OpenConnections, InUse, ConnectionsOpened or ConnectionsClosed (the
	// server's max_connections counts it). A failover a listener sees
	// counts in Failovers and ReplacedForFailover, as the pool's do.
	Listeners int

	// StandbyStatements counts the statements marked with PreferStandby
	// that ran on a standby (a database/sql Prepare so marked counts as
	// one); marked statements that found no standby reachable ran on the
	// pool's own connections and are not counted. StandbyConnections is
	// the number of open connections of the standby pool, which is opened
	// on the first marked statement of a pool whose DSN lists several
	// hosts; like a listener's, they are not counted in MaxConnections,
	// OpenConnections, InUse, ConnectionsOpened or ConnectionsClosed.
	StandbyStatements  uint64
	StandbyConnections int

	// With multiplexing=on: MultiplexedStatements counts the statements
	// sent on shared connections and MultiplexRoundTrips the round trips
	// that carried them (their ratio is the mean batch depth);
	// MultiplexSlowExclusive counts statements that could have been
	// multiplexed but ran on a connection of their own because their
	// text ran slowly last time; MultiplexLargeExclusive counts those
	// that did because their text's last multiplexed result was large
	// (more than 16 rows). All stay 0 with multiplexing off.
	MultiplexedStatements   uint64
	MultiplexRoundTrips     uint64
	MultiplexSlowExclusive  uint64
	MultiplexLargeExclusive uint64
}

// Stats returns a snapshot of the pool's gauges and counters.
func (x *Pool) Stats() Stats {
	ps := x.c.pool.Stats()
	return Stats{
		MaxConnections:    ps.Max,
		IdleConnections:   ps.Idle,
		WaitingTasks:      ps.Waiting,
		OpenConnections:   ps.Total,
		InUse:             ps.InUse,
		Recovering:        int(x.c.sh.stats.recovering.Load()),
		Opening:           ps.Opening,
		Deficit:           ps.Deficit,
		Acquires:          ps.Acquires,
		WaitedAcquires:    ps.WaitedAcquires,
		WaitDuration:      ps.WaitDuration,
		CanceledAcquires:  ps.CanceledAcquires,
		ConnectionsOpened: ps.Opened,
		ConnectFailures:   ps.OpenFailures,
		ConnectionsClosed: ps.Closed,
		CancelsSent:       x.c.sh.stats.cancelsSent.Load(),
		CancelsKept:       x.c.sh.stats.cancelsKept.Load(),
		CancelsLost:       x.c.sh.stats.cancelsLost.Load(),

		Failovers:           x.c.sh.stats.failovers.Load(),
		ReplacedForFailover: x.c.sh.stats.replacedForFailover.Load(),

		NamedStatements:       x.c.sh.cfg.QueryMode == QueryModePrepare || x.c.sh.cfg.QueryMode == QueryModeAuto && !x.c.sh.unnamed.Load(),
		StaleStatementRetries: x.c.sh.stats.staleRetries.Load(),

		Listeners: int(x.c.sh.stats.listeners.Load()),

		StandbyStatements:       x.c.sh.stats.standbyStatements.Load(),
		StandbyConnections:      x.standbyConnections(),
		MultiplexedStatements:   x.c.sh.stats.muxStatements.Load(),
		MultiplexRoundTrips:     x.c.sh.stats.muxRoundTrips.Load(),
		MultiplexSlowExclusive:  x.c.sh.stats.muxSlowExclusive.Load(),
		MultiplexLargeExclusive: x.c.sh.stats.muxLargeExclusive.Load(),
	}
}

func (x *Pool) standbyConnections() int {
	if x.c.standby == nil {
		return 0
	}
	return x.c.standby.pool.Stats().Total
}
