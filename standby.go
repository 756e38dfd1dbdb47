package pgpurepy

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy/internal/pool"
)

type preferStandbyKey struct{}

// PreferStandby returns a copy of ctx that sends the autocommit statements
// run with it to a standby of the pool's multi-host DSN: db.QueryContext,
// db.QueryRowContext, db.ExecContext and statements of a db.Prepare outside
// a transaction, and the extension's Pool.Execute, Fetch, FetchOne,
// FetchOneOrNone, Query and FetchStructs. A standby serves reads only: a
// write sent there fails with the server's error 25006
// (read_only_sql_transaction), and nothing is retried elsewhere. What a
// standby returns may lag behind what the primary committed a moment ago.
//
// Everything else ignores the mark and stays where the DSN's
// target_session_attrs puts it: transactions (BeginTx, with every statement
// in them, and CheckoutInTransaction), Checkout, a *sql.Conn that already
// holds a connection, COPY, batches and LISTEN. The pool of a DSN with one
// host ignores it too.
//
// The standby's connections form a second pool of
// standby_connection_count connections (connection_count by default),
// opened on the first marked statement with target_session_attrs=standby.
// When no standby can be reached the marked
// statements run on the pool's own connections, as with libpq's
// prefer-standby, without waiting for the connection attempts: the pool
// looks for a standby again in the background about once a second. A
// connection whose standby was promoted is replaced. The context's end
// cancels a marked statement as any other, and while a marked statement
// waits for a standby's connection it returns the context's error.
func PreferStandby(ctx context.Context) context.Context {
	return context.WithValue(ctx, preferStandbyKey{}, true)
}

func prefersStandby(ctx context.Context) bool {
	return ctx.Value(preferStandbyKey{}) != nil
}

// standbyRetryAfter is how long marked statements go straight to the
// primary after no standby could be reached: each would otherwise wait for
// a connection attempt that most likely fails again.
const standbyRetryAfter = time.Second

// standby is the second pool of a pool whose DSN lists several hosts: its
// sessions are on standbys (target_session_attrs=standby), for the
// statements marked with PreferStandby. It opens nothing before the first
// of them.
type standby struct {
	pool *pool.Pool[*session]
	log  logger
	// retryAt is when marked statements try a standby again (Unix
	// nanoseconds) after none could be reached.
	retryAt atomic.Int64
	// down is set once no standby could be reached, until a marked
	// statement gets a standby's session again. While it is set and the
	// pool holds no session, the next attempt dials in the background:
	// a statement waiting for it could wait for the pool's backoff too.
	down atomic.Bool
}

// forStandby returns what the sessions of sh's standby pool share: the
// converters, the cancel requests and the counters of sh, but not its
// failover state, since a standby is not a failover of the writable server.
func (sh *shared) forStandby() *shared {
	cfg := sh.cfg.Copy()
	cfg.ConnConfig.ValidateConnect = pgconn.ValidateConnectTargetSessionAttrsStandby
	if cfg.StandbyConnectionCount > 0 {
		cfg.ConnectionCount = cfg.StandbyConnectionCount
	}
	return &shared{
		cfg:       cfg,
		stats:     sh.stats,
		reg:       sh.reg,
		nulls:     sh.nulls,
		failover:  &failover{stats: sh.stats, log: sh.log},
		cancels:   sh.cancels,
		trace:     sh.trace,
		log:       sh.log,
		life:      sh.life,
		onStandby: true,
	}
}

// acquire checks a session out of the standby pool, or returns none and no
// error when no standby can be reached: the caller then runs the statement
// on the primary pool. Its errors are ctx's and the closed pool's.
func (sb *standby) acquire(ctx context.Context) (*pool.Resource[*session], error) {
	now := time.Now()
	if now.UnixNano() < sb.retryAt.Load() {
		return nil, nil
	}
	if sb.down.Load() && sb.pool.Total() == 0 {
		sb.retryAt.Store(now.Add(standbyRetryAfter).UnixNano())
		sb.pool.Start(1)
		return nil, nil
	}
	res, err := sb.pool.Acquire(ctx)
	if err == nil {
		if sb.down.Load() {
			sb.down.Store(false)
		}
		return res, nil
	}
	if ctx.Err() != nil || errors.Is(err, pool.ErrClosed) {
		return nil, err
	}
	sb.down.Store(true)
	sb.retryAt.Store(time.Now().Add(standbyRetryAfter).UnixNano())
	sb.log.warn("no standby reachable: marked reads run on the primary", "err", err)
	return nil, nil
}

// multiHost reports whether cc lists more than one server, which is when
// a pool keeps a standby pool.
func multiHost(cc *pgconn.Config) bool {
	for _, fb := range cc.Fallbacks {
		if fb.Host != cc.Host || fb.Port != cc.Port {
			return true
		}
	}
	return false
}
