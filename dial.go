package pgpurepy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgpurepy/pgpurepy/internal/wire"
)

const cancelHandlerKey = "pgpurepy.cancel"

// open dials one connection and makes it a session of the pool: it reads
// through a Framer and is cancelled by a cancelHandler, and it has the
// registered converters applied. It is the pool's Open: the connect is
// bounded by ctx and by connect_timeout.
func (sh *shared) open(ctx context.Context) (*session, error) {
	cc := sh.cfg.ConnConfig.Copy()
	if sh.cfg.BeforeConnect != nil {
		if err := sh.cfg.BeforeConnect(ctx, cc); err != nil {
			sh.log.warn("BeforeConnect failed", "err", err)
			return nil, fmt.Errorf("pgpurepy: connect: BeforeConnect: %w", err)
		}
	}
	// After BeforeConnect, so that hosts it sets are balanced too.
	if sh.cfg.LoadBalanceHosts {
		shuffleHosts(cc)
	}
	var (
		mu      sync.Mutex
		framers []*wire.Framer
	)
	// pgconn builds a frontend for each connection attempt (several with
	// fallback hosts), then, once one is established and before it
	// validates it (target_session_attrs) with ctx, its context handler.
	// The handler goes with the framer built on the same socket.
	cc.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		f := wire.NewFramer(r, w.(net.Conn))
		if hook := preparePassword(cc); hook != nil {
			f.OnStartup(hook)
		}
		mu.Lock()
		framers = append(framers, f)
		mu.Unlock()
		return pgproto3.NewFrontend(f, f)
	}
	cc.BuildContextWatcherHandler = func(pg *pgconn.PgConn) ctxwatch.Handler {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range framers {
			if f.Conn() == pg.Conn() {
				f.Established(pg)
				h := &cancelHandler{pg: pg, f: f, c: sh.cancels}
				pg.CustomData()[cancelHandlerKey] = h
				return h
			}
		}
		return &pgconn.DeadlineContextWatcherHandler{Conn: pg.Conn()}
	}
	// A notification goes to the session's listener (listen.go). Pool
	// sessions have none and drop it, as pgconn does without a handler; a
	// handler set in the Config's ConnConfig still sees every one.
	var s *session
	userNotify := cc.OnNotification
	cc.OnNotification = func(pg *pgconn.PgConn, n *pgconn.Notification) {
		if s != nil && s.notify != nil {
			s.notify(n)
		}
		if userNotify != nil {
			userNotify(pg, n)
		}
	}
	ct := sh.trace.connect
	if ct != nil {
		ctx = ct.TraceConnectStart(ctx, cc)
	}
	s, err := sh.connect(ctx, cc)
	if ct != nil {
		var pid uint32
		if s != nil {
			pid = s.pg.PID()
		}
		ct.TraceConnectEnd(ctx, pid, err)
	}
	return s, err
}

// connect connects with cc, built by open, and makes the connection a
// session.
func (sh *shared) connect(ctx context.Context, cc *pgconn.Config) (*session, error) {
	pg, err := pgconn.ConnectConfig(ctx, cc)
	if err != nil {
		sh.log.warn("connect failed", "err", err)
		return nil, fmt.Errorf("pgpurepy: connect: %w", err)
	}
	h, ok := pg.CustomData()[cancelHandlerKey].(*cancelHandler)
	if !ok {
		_ = pg.Close(ctx)
		return nil, errors.New("pgpurepy: connect: pgconn did not read through pgpurepy's framer")
	}
	s := newSession(sh, pg, h)
	s.generation = sh.failover.noteServer(pg)
	if err := s.sync(); err != nil {
		s.close()
		return nil, err
	}
	if err := s.detectPooler(ctx); err != nil {
		s.close()
		return nil, fmt.Errorf("pgpurepy: connect: %w", err)
	}
	sh.log.debug("connection opened", "pid", pg.PID())
	return s, nil
}

// preparePassword returns a framer's startup hook that gives pgconn the
// password cc's server expects for the authentication it asks for: SCRAM
// takes the password prepared with SASLprep, which the server applied when
// it stored the secret and pgconn does not apply (it uses PRECIS, which
// differs); md5 and cleartext take it as it is, as libpq does. pgconn reads
// cc.Password when the request arrives, after the hook has seen it. Most
// passwords are the same either way, and then there is no hook.
func preparePassword(cc *pgconn.Config) func(typ byte, body []byte) {
	raw := cc.Password
	prepared := saslPrep(raw)
	if prepared == raw {
		return nil
	}
	return func(typ byte, body []byte) {
		const sasl, cleartext, md5 = 10, 3, 5
		if typ != 'R' || len(body) < 4 {
			return
		}
		switch binary.BigEndian.Uint32(body) {
		case sasl:
			cc.Password = prepared
		case cleartext, md5:
			cc.Password = raw
		}
	}
}
