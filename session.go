package pgpurepy

import (
	"context"
	"database/sql/driver"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgpurepy/pgpurepy/internal/wire"
)

// shared is what the sessions of one pool share: its settings and the
// pool-wide state a session reads, fills or counts in. It is all a session
// knows of its pool; the pool that holds the sessions (internal/pool) is
// not part of it.
type shared struct {
	cfg      *Config
	stats    *counters
	reg      *registry
	nulls    *nullability
	failover *failover
	cancels  *canceller
	trace    tracers
	log      logger
	// life ends when the pool is closed: recoveries stop with it.
	life context.Context
	// unnamed is set when a pooler lost a named statement in
	// query_mode=auto: no more are prepared (see naming.go).
	unnamed atomic.Bool
	// onStandby is set for the sessions of a standby pool (standby.go),
	// which the checkout replaces when their server left recovery.
	onStandby bool
}

// session is one physical connection to the server: what the pool holds. It
// is used by one goroutine at a time (the pool hands it to one holder, and
// database/sql serialises each driver connection), so it has no mutex; pgconn
// watches the context of each call itself. The rules of ownership are in
// doc.go; the session's behaviours are each in a file of their own
// (statements.go, exec.go, finish.go, begin.go, recovery.go, catalog.go,
// health.go).
type session struct {
	pg *pgconn.PgConn
	sh *shared

	codecs codecs
	// regVersion is the converter registry version applied to codecs.
	regVersion uint64

	cancel *cancelHandler
	framer *wire.Framer
	// recovery is set while the session recovers from a cancel request
	// (see recovery.go); only the holder reads and writes the field.
	recovery *recovery

	stmts stmtCache
	// prepared holds explicitly prepared statements outside stmts, drops
	// the names of statements to deallocate, and closed the statements
	// closed by other goroutines (see statements.go).
	prepared map[string]*stmtDesc
	drops    []string
	closed   closedStmts

	// peeker and grace serve the checkout's health check (health.go).
	peeker *wire.Peeker
	grace  graceCtx

	// params are the arguments of the statement being sent; namedBuf holds
	// the extension's arguments (Conn.namedArgs).
	params   params
	namedBuf []driver.NamedValue

	// begin is the BEGIN of the holder's transaction while it has not gone
	// to the server (see begin.go).
	begin string

	// notify receives the notifications the server sends on the session:
	// set on a listener's session (listen.go), nil on the pool's.
	notify func(*pgconn.Notification)

	// broken is set when the connection must not be used again.
	broken error
	// generation is the pool's failover generation when s was opened.
	generation uint64
	// pooled is set when the session reaches the server through a pooler
	// (see naming.go).
	pooled bool
	// dirty is set when a statement may have left session state behind;
	// the release resets it (see reset).
	dirty bool
}

func newSession(sh *shared, pg *pgconn.PgConn, h *cancelHandler) *session {
	return &session{
		pg:     pg,
		sh:     sh,
		codecs: codecs{tm: pgtype.NewMap()},
		cancel: h,
		framer: h.f,
		peeker: wire.NewPeeker(pg.Conn()),
		stmts:  stmtCache{capacity: sh.cfg.StatementCacheCapacity, prefix: "pgpurepy_" + strconv.FormatUint(rand.Uint64(), 36) + "_"},
	}
}

// usable reports why the session cannot run a statement, if it cannot.
func (s *session) usable() error {
	if s.broken != nil {
		return fmt.Errorf("pgpurepy: %w: connection unusable: %w", driver.ErrBadConn, s.broken)
	}
	if s.pg.IsClosed() {
		return fmt.Errorf("pgpurepy: %w: connection closed", driver.ErrBadConn)
	}
	return nil
}

// healthy reports whether the session may run another statement. During a
// recovery it says yes: the recovery decides, and replaces the session if
// it must.
func (s *session) healthy() bool {
	return s.recovery != nil || (s.broken == nil && !s.pg.IsClosed())
}

// rollbackCtx returns a context for cleanup that must run even though the
// caller's context is done, bounded by the cancel grace.
func (s *session) rollbackCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.sh.cfg.CancelGrace)
}

// resetSQL undoes what a holder can leave in a session, as DISCARD ALL does
// but for the statements the session prepared itself, which it keeps.
const resetSQL = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES"

// reset makes the session clean for its next holder: it rolls back a
// transaction the last holder left open and, with state, when a statement
// may have left session state behind (dirty), resets it and runs the
// connection's AfterConnect hook again. A clean session costs nothing here.
// It reports whether the session is still usable.
//
// Only the extension's holders (Checkout) ask for state: database/sql gives
// a connection back after every statement, and code written for other
// drivers relies on state (a temporary table) living on while it reuses
// the same connection.
func (s *session) reset(state bool) bool {
	s.begin = ""
	state = state && s.dirty
	if s.broken != nil || s.pg.IsClosed() {
		return false
	}
	if s.pg.TxStatus() == 'I' && !state {
		return true
	}
	ctx, cancel := s.rollbackCtx()
	defer cancel()
	if s.pg.TxStatus() != 'I' {
		if _, err := s.pg.Exec(ctx, "ROLLBACK").ReadAll(); err != nil || s.pg.TxStatus() != 'I' {
			return false
		}
	}
	if !state {
		return true
	}
	if _, err := s.pg.Exec(ctx, resetSQL).ReadAll(); err != nil {
		return false
	}
	if after := s.sh.cfg.ConnConfig.AfterConnect; after != nil {
		if err := after(ctx, s.pg); err != nil {
			return false
		}
	}
	s.dirty = false
	return true
}

// close ends the session with a Terminate message, bounded in time.
func (s *session) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.pg.Close(ctx)
}
