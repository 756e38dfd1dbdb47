package pgpurepy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgpurepy/pgpurepy/internal/pool"
)

// Connector owns one persistent pool of connections described by one
// Config. database/sql calls Connect to check a connection out of the pool;
// the connection goes back to the pool when database/sql closes it. Closing
// the Connector (db.Close does it) closes the pool.
type Connector struct {
	p   *poolState
	drv *Driver
}

var (
	_ driver.Connector = (*Connector)(nil)
	_ io.Closer        = (*Connector)(nil)
)

// poolState is what every session of one pool shares.
type poolState struct {
	cfg   *Config
	pool  *pool.Pool[*session]
	reg   registry
	stats counters
	// cancelDials bounds the cancel requests in flight (a semaphore).
	cancelDials chan struct{}
	nulls       nullability
	// life ends when the Connector is closed; cancel requests and
	// recoveries stop with it.
	life    context.Context
	endLife context.CancelFunc

	// wantsPrimary is set when target_session_attrs asks for a writable
	// server (read-write or primary): then a change of server is a failover.
	wantsPrimary bool
	// generation counts failovers; sessions opened before the last one are
	// replaced at their next checkout.
	generation atomic.Uint64
	serverMu   sync.Mutex // protects server
	server     string     // address of the server the last connection reached
}

// counters are the pool-wide statistics kept outside internal/pool.
type counters struct {
	cancelsSent atomic.Uint64
	cancelsKept atomic.Uint64
	cancelsLost atomic.Uint64
	recovering  atomic.Int64
	failovers   atomic.Uint64
	// replacedForFailover counts sessions closed because they were on a
	// server that is no longer the writable one.
	replacedForFailover atomic.Uint64
}

const cancelHandlerKey = "pgpurepy.cancel"

// NewConnector parses dsn (see ParseConfig) and returns a Connector for
// sql.OpenDB. It opens no connection: the first one is opened by the first
// statement, and the pool then fills itself in the background.
func NewConnector(dsn string) (*Connector, error) {
	cfg, err := ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return NewConnectorConfig(cfg)
}

// NewConnectorConfig returns a Connector for cfg, which it keeps; the caller
// must not change cfg afterwards. It opens no connection.
func NewConnectorConfig(cfg *Config) (*Connector, error) {
	if cfg == nil || cfg.ConnConfig == nil {
		return nil, errors.New("pgpurepy: config must come from ParseConfig")
	}
	if cfg.ConnectionCount < 1 {
		return nil, &ConfigError{Key: "connection_count", Err: errors.New("must be at least 1")}
	}
	if cfg.CancelGrace <= 0 {
		return nil, &ConfigError{Key: "cancel_grace", Err: errors.New("must be more than 0")}
	}
	cfg = cfg.Copy()
	p := &poolState{
		cfg:          cfg,
		cancelDials:  make(chan struct{}, max(cfg.MaxCancelDials, 1)),
		wantsPrimary: wantsWritable(cfg.ConnConfig),
	}
	p.life, p.endLife = context.WithCancel(context.Background())
	pl, err := pool.New(pool.Config[*session]{
		Size:              cfg.ConnectionCount,
		Open:              p.open,
		Close:             func(s *session) { s.close() },
		Check:             p.check,
		MaxLifetime:       cfg.MaxConnLifetime,
		MaxLifetimeJitter: cfg.MaxConnLifetimeJitter,
		MaxIdleTime:       cfg.MaxConnIdleTime,
		KeepaliveInterval: cfg.KeepaliveInterval,
		Keepalive:         keepalive(cfg.KeepaliveInterval),
	})
	if err != nil {
		return nil, fmt.Errorf("pgpurepy: %w", err)
	}
	p.pool = pl
	c := &Connector{p: p}
	c.drv = &Driver{c: c}
	return c, nil
}

// OpenDB returns a *sql.DB on a new Connector for dsn. database/sql's idle
// limit is raised to the pool's size: the connections database/sql parks
// hold no server session (see the extension's Pool), so keeping them costs
// nothing and saves database/sql from allocating a new one per statement.
// The open limit stays unlimited so that callers queue in our pool, first
// come first served, where WaitingTasks counts them. It opens no connection.
func OpenDB(dsn string) (*sql.DB, error) {
	c, err := NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(c)
	db.SetMaxIdleConns(c.p.cfg.ConnectionCount)
	return db, nil
}

// Connect checks a connection out of the pool, waiting first come first
// served while all are busy. It returns ctx's error when ctx ends first, and
// a connection error (wrapped, never with the password) when the server
// cannot be reached and the pool holds no connection.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	cn := &conn{p: c.p}
	if err := cn.bind(ctx); err != nil {
		return nil, err
	}
	return cn, nil
}

// Driver returns a Driver that leads back to this Connector, which is how
// Ext finds the pool of a *sql.DB.
func (c *Connector) Driver() driver.Driver { return c.drv }

// Close closes the pool: idle connections are closed with a Terminate message
// now, checked-out ones when they are returned. It never fails.
func (c *Connector) Close() error {
	c.p.endLife()
	c.p.pool.Close()
	return nil
}

// keepalive returns the pool's keepalive function when keepalives are on.
func keepalive(interval time.Duration) func(context.Context, *session) error {
	if interval == 0 {
		return nil
	}
	return func(ctx context.Context, s *session) error { return s.pg.Ping(ctx) }
}

// acquire checks a session out and brings it up to date with the registry.
func (p *poolState) acquire(ctx context.Context) (*session, *pool.Resource[*session], error) {
	res, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("pgpurepy: acquire connection: %w", err)
	}
	return res.Value(), res, nil
}

// open dials one connection.
func (p *poolState) open(ctx context.Context) (*session, error) {
	cc := *p.cfg.ConnConfig
	var (
		mu      sync.Mutex
		framers []*framer
	)
	// pgconn builds a frontend for each connection attempt (several with
	// fallback hosts), then, once one is established and before it
	// validates it (target_session_attrs) with ctx, its context handler.
	// The handler goes with the framer built on the same socket.
	cc.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		f := newFramer(r, w.(net.Conn))
		f.startup = preparePassword(&cc)
		mu.Lock()
		framers = append(framers, f)
		mu.Unlock()
		return pgproto3.NewFrontend(f, f)
	}
	cc.BuildContextWatcherHandler = func(pg *pgconn.PgConn) ctxwatch.Handler {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range framers {
			if f.nc == pg.Conn() {
				f.pg, f.startup = pg, nil
				h := &cancelHandler{pg: pg, p: p, f: f}
				pg.CustomData()[cancelHandlerKey] = h
				return h
			}
		}
		return &pgconn.DeadlineContextWatcherHandler{Conn: pg.Conn()}
	}
	pg, err := pgconn.ConnectConfig(ctx, &cc)
	if err != nil {
		p.logWarn("connect failed", "err", err)
		return nil, fmt.Errorf("pgpurepy: connect: %w", err)
	}
	h, ok := pg.CustomData()[cancelHandlerKey].(*cancelHandler)
	if !ok {
		_ = pg.Close(ctx)
		return nil, errors.New("pgpurepy: connect: pgconn did not read through pgpurepy's framer")
	}
	s := newSession(p, pg, h)
	s.generation = p.noteServer(pg)
	if err := s.sync(); err != nil {
		s.close()
		return nil, err
	}
	p.logDebug("connection opened", "pid", pg.PID())
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

// peekAfterIdle is how long a session must have sat idle before a checkout
// looks at its socket. A session released a moment ago is as good as one
// handed straight from a release to a waiter, which is never looked at: it
// was in use, not idle, and the look (a syscall) would cost a tenth of a
// point select's CPU.
const peekAfterIdle = time.Millisecond

// check decides at checkout whether an idle session may be handed out. It
// costs no round trip unless the session sat idle longer than PingAfterIdle
// or the server sent something while it was idle.
func (p *poolState) check(ctx context.Context, s *session, idle time.Duration) error {
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
	// The round trips below are bounded by the cancel grace, not by ctx.
	// Their context is made only if one of them runs: a timer per checkout
	// cost five allocations and a tenth of a point select's CPU.
	pctx := &s.grace
	pctx.reset(ctx, p.cfg.CancelGrace)
	defer pctx.stop()
	// pgconn may have left a background reader parked on the socket after a
	// slow write; SyncConn stops it (normally just a status check) so that
	// the socket can be looked at directly.
	if err := s.pg.SyncConn(pctx); err != nil {
		return err
	}
	pending := s.framer.buffered()
	if idle >= peekAfterIdle {
		seen, err := s.peeker.peek()
		if err != nil {
			return err
		}
		pending = pending || seen
	}
	if pending || (p.cfg.PingAfterIdle > 0 && idle >= p.cfg.PingAfterIdle) {
		if err := s.pg.Ping(pctx); err != nil {
			return err
		}
	}
	// After the ping, so that parameter changes it brought are seen.
	return p.checkWritable(ctx, s)
}

func (p *poolState) logWarn(msg string, args ...any) {
	if p.cfg.Logger != nil {
		p.cfg.Logger.Warn("pgpurepy: "+msg, args...)
	}
}

func (p *poolState) logDebug(msg string, args ...any) {
	if p.cfg.Logger != nil {
		p.cfg.Logger.Debug("pgpurepy: "+msg, args...)
	}
}

// graceCtx is the context of the round trips of a checkout's health check:
// context.WithTimeout(context.WithoutCancel(parent), grace), made on first
// use. The check normally makes no round trip and so no context and no
// timer. One lives in each session and is reset by every check: only the
// check's goroutine calls its methods (pgconn's context watcher registers
// with the inner context, which Value exposes, and the watch has ended when
// a pgconn call returns).
type graceCtx struct {
	parent context.Context
	grace  time.Duration
	ctx    context.Context
	cancel context.CancelFunc
}

var _ context.Context = (*graceCtx)(nil)

func (g *graceCtx) reset(parent context.Context, grace time.Duration) {
	*g = graceCtx{parent: parent, grace: grace}
}

func (g *graceCtx) get() context.Context {
	if g.ctx == nil {
		g.ctx, g.cancel = context.WithTimeout(context.WithoutCancel(g.parent), g.grace)
	}
	return g.ctx
}

// stop releases the timer, if one was made, and the parent.
func (g *graceCtx) stop() {
	if g.cancel != nil {
		g.cancel()
	}
	g.parent = nil
}

func (g *graceCtx) Deadline() (time.Time, bool) { return g.get().Deadline() }
func (g *graceCtx) Done() <-chan struct{}       { return g.get().Done() }
func (g *graceCtx) Err() error                  { return g.get().Err() }
func (g *graceCtx) Value(key any) any           { return g.get().Value(key) }
