package pgpurepy

import (
	"context"
	"errors"
	"time"
)

// peekAfterIdle is how long a session must have sat idle before a checkout
// looks at its socket. A session released a moment ago is as good as one
// handed straight from a release to a waiter, which is never looked at: it
// was in use, not idle, and the look (a syscall) would cost a tenth of a
// point select's CPU.
const peekAfterIdle = time.Millisecond

// check decides at checkout whether the session, idle for idle, may be
// handed out. It costs no round trip unless the session sat idle longer
// than ping_after_idle or the server sent something while it was idle.
// An error has the pool replace the session.
func (s *session) check(ctx context.Context, idle time.Duration) error {
	if err := s.usable(); err != nil {
		return err
	}
	if s.cancel.fired.Load() {
		// A pool round trip (keepalive, rollback) ran out of time at its
		// very end; replacing the session is simpler than recovering it.
		return errors.New("pgpurepy: connection has a cancel request pending")
	}
	if s.pg.TxStatus() != 'I' {
		return errors.New("pgpurepy: connection left in a transaction")
	}
	cfg := s.sh.cfg
	// The round trips below are bounded by the cancel grace, not by ctx.
	// Their context is made only if one of them runs: a timer per checkout
	// cost five allocations and a tenth of a point select's CPU.
	pctx := &s.grace
	pctx.reset(ctx, cfg.CancelGrace)
	defer pctx.stop()
	// pgconn may have left a background reader parked on the socket after a
	// slow write; SyncConn stops it (normally just a status check) so that
	// the socket can be looked at directly.
	if err := s.pg.SyncConn(pctx); err != nil {
		return err
	}
	pending := s.framer.Buffered()
	if idle >= peekAfterIdle {
		seen, err := s.peeker.Peek()
		if err != nil {
			return err
		}
		pending = pending || seen
	}
	if pending || (cfg.PingAfterIdle > 0 && idle >= cfg.PingAfterIdle) {
		if err := s.pg.Ping(pctx); err != nil {
			return err
		}
	}
	// After the ping, so that parameter changes it brought are seen.
	if s.sh.onStandby && s.pg.ParameterStatus("in_hot_standby") == "off" {
		// The standby was promoted: leave the new primary to its writes.
		// The server reports the parameter unprompted (PostgreSQL 14 and
		// later), so this costs no round trip.
		return errLeftRecovery
	}
	return s.sh.failover.checkWritable(ctx, s.pg, s.generation, cfg.CancelGrace)
}

var errLeftRecovery = errors.New("pgpurepy: standby connection is on a server that left recovery")

// keepalive returns the pool's keepalive function when keepalives are on.
func keepalive(interval time.Duration) func(context.Context, *session) error {
	if interval == 0 {
		return nil
	}
	return func(ctx context.Context, s *session) error { return s.pg.Ping(ctx) }
}
