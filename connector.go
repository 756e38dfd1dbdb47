package pgpurepy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/pgpurepy/pgpurepy/internal/pool"
)

// Connector owns one persistent pool of connections described by one
// Config. database/sql calls Connect to check a connection out of the pool;
// the connection goes back to the pool when database/sql closes it. Closing
// the Connector (db.Close does it) closes the pool.
type Connector struct {
	sh   *shared
	pool *pool.Pool[*session]
	// standby is the pool of standby connections for the statements marked
	// with PreferStandby; nil unless the DSN lists several hosts.
	standby *standby
	// mux is the pool's multiplexer with multiplexing=on, else nil.
	mux multiplexer
	// endLife ends sh.life: cancel requests and recoveries stop.
	endLife context.CancelFunc
}

var (
	_ driver.Connector = (*Connector)(nil)
	_ io.Closer        = (*Connector)(nil)
)

// NewConnector parses dsn (see ParseConfig) and returns a Connector for
// sql.OpenDB. It opens no connection before it returns: the first ones are
// opened by the first statement, or in the background from now on with
// min_connections, and the pool then fills itself in the background.
func NewConnector(dsn string) (*Connector, error) {
	cfg, err := ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	return NewConnectorConfig(cfg)
}

// NewConnectorConfig returns a Connector for a copy of cfg. It opens no
// connection. A Config that did not come from ParseConfig, or whose pool
// settings are out of range, gives an error naming the setting.
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
	if cfg.MinConnections > cfg.ConnectionCount {
		return nil, &ConfigError{Key: "min_connections", Err: errors.New("must be at most connection_count")}
	}
	cfg = cfg.Copy()
	life, endLife := context.WithCancel(context.Background())
	stats := &counters{}
	log := logger{cfg.Logger}
	sh := &shared{
		cfg:      cfg,
		stats:    stats,
		reg:      &registry{},
		nulls:    &nullability{},
		failover: &failover{wanted: wantsWritable(cfg.ConnConfig), stats: stats, log: log},
		cancels: &canceller{
			grace: cfg.CancelGrace,
			dials: make(chan struct{}, max(cfg.MaxCancelDials, 1)),
			life:  life,
			stats: stats,
			log:   log,
		},
		trace: newTracers(cfg.Tracer),
		log:   log,
		life:  life,
	}
	pl, err := newPool(sh)
	if err != nil {
		endLife()
		return nil, err
	}
	c := &Connector{sh: sh, pool: pl, endLife: endLife}
	if multiHost(cfg.ConnConfig) {
		spl, err := newPool(sh.forStandby())
		if err != nil {
			pl.Close()
			endLife()
			return nil, err
		}
		c.standby = &standby{pool: spl, log: log}
	}
	pl.Start(cfg.MinConnections)
	if cfg.Multiplexing {
		c.mux = newMux(sh, pl)
	}
	return c, nil
}

// newPool returns a pool of sessions that share sh. It opens nothing.
func newPool(sh *shared) (*pool.Pool[*session], error) {
	cfg := sh.cfg
	pl, err := pool.New(pool.Config[*session]{
		Size:              cfg.ConnectionCount,
		Open:              sh.open,
		Close:             func(s *session) { s.close() },
		Check:             func(ctx context.Context, s *session, idle time.Duration) error { return s.check(ctx, idle) },
		MaxLifetime:       cfg.MaxConnLifetime,
		MaxLifetimeJitter: cfg.MaxConnLifetimeJitter,
		MaxIdleTime:       cfg.MaxConnIdleTime,
		KeepaliveInterval: cfg.KeepaliveInterval,
		Keepalive:         keepalive(cfg.KeepaliveInterval),
	})
	if err != nil {
		return nil, fmt.Errorf("pgpurepy: %w", err)
	}
	return pl, nil
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
	db.SetMaxIdleConns(c.sh.cfg.ConnectionCount)
	return db, nil
}

// Connect checks a connection out of the pool, waiting first come first
// served while all are busy. It returns ctx's error when ctx ends first, and
// a connection error (wrapped, never with the password) when the server
// cannot be reached and the pool holds no connection. With multiplexing on
// it checks nothing out: the connection's first statement that needs a
// session of its own does, and the others are multiplexed. With a context
// marked by PreferStandby, on a pool whose DSN lists several hosts, it
// checks nothing out either: the connection's first call does, from the
// standby pool for a statement and from the pool otherwise. In both cases
// it never fails.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	cn := &conn{pool: c.pool, sh: c.sh, standby: c.standby, mux: c.mux}
	if c.mux != nil || cn.waitsForStatement(ctx) {
		return cn, nil
	}
	if err := cn.bind(ctx); err != nil {
		return nil, err
	}
	return cn, nil
}

// Close closes the pool: idle connections are closed with a Terminate message
// now, checked-out ones when they are returned. It never fails.
func (c *Connector) Close() error {
	c.endLife()
	c.pool.Close()
	if c.standby != nil {
		c.standby.pool.Close()
	}
	return nil
}
