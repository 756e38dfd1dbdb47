package pgpurepy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Query modes accepted by the query_mode DSN key.
const (
	// QueryModeAuto, the default, prepares named statements as
	// QueryModePrepare does, and stays safe behind a pooler that moves a
	// client between server connections (pgbouncer in transaction or
	// statement pooling): a connection that reaches the server through a
	// pooler (the server's process id differs from the one the connection
	// was given) runs statements inside transactions unnamed, and when the
	// server answers that a named statement does not exist, which happens
	// before anything ran, the statement runs again unnamed and the pool
	// prepares no more named statements (Stats.NamedStatements turns false).
	// Behind pgbouncer 1.21 or newer with max_prepared_statements, named
	// statements keep working.
	QueryModeAuto = "auto"
	// QueryModePrepare prepares each distinct SQL text once per connection as a
	// named statement and executes it with one round trip afterwards. It is the
	// fastest mode and works with PostgreSQL directly and with pgbouncer 1.21 or
	// newer when max_prepared_statements is set.
	QueryModePrepare = "prepare"
	// QueryModeDescribe describes each distinct SQL text once per connection and
	// then executes it as an unnamed statement in a single round trip. Nothing
	// named survives on the server, so it is safe behind pgbouncer in
	// transaction pooling mode of any version.
	QueryModeDescribe = "describe"
)

// Config is the configuration of one pool. ParseConfig fills it from a DSN;
// NewConnectorConfig takes one the caller may have adjusted. A Config must not
// be changed after it was passed to NewConnectorConfig.
type Config struct {
	// ConnConfig is pgconn's configuration: hosts, TLS, authentication,
	// runtime parameters. It never carries the keys of the table below.
	ConnConfig *pgconn.Config

	// ConnectionCount is the number of connections the pool keeps open
	// (connection_count).
	ConnectionCount int
	// MinConnections is how many connections the pool starts opening when
	// it is created, before the first statement, so that a first burst
	// does not wait for dials (min_connections). The pool then fills
	// itself to ConnectionCount, as it does after its first statement.
	MinConnections int
	// QueryMode is QueryModeAuto, QueryModePrepare or QueryModeDescribe
	// (query_mode).
	QueryMode string
	// StatementCacheCapacity bounds the statements cached per connection
	// (statement_cache_capacity).
	StatementCacheCapacity int
	// PingAfterIdle is how long a connection may sit idle before a checkout
	// pings it; zero means checkouts never ping (ping_after_idle).
	PingAfterIdle time.Duration
	// CancelGrace bounds how long a cancelled statement may take to stop on the
	// server before its connection is closed and replaced (cancel_grace). The
	// caller whose context ended does not wait for it: the statement's call
	// returns at once, and the connection recovers in the background.
	CancelGrace time.Duration
	// MaxCancelDials bounds the cancel requests in flight at once
	// (max_cancel_dials).
	MaxCancelDials int
	// MaxConnLifetime closes connections older than this, plus up to
	// MaxConnLifetimeJitter; zero keeps them forever (max_conn_lifetime,
	// max_conn_lifetime_jitter).
	MaxConnLifetime       time.Duration
	MaxConnLifetimeJitter time.Duration
	// MaxConnIdleTime closes connections idle for longer; zero keeps them
	// (max_conn_idle_time). Closed connections are replaced.
	MaxConnIdleTime time.Duration
	// KeepaliveInterval pings idle connections this often so that a proxy's
	// idle timeout never closes them; zero disables it (keepalive_interval).
	KeepaliveInterval time.Duration
	// Multiplexing queues the autocommit statements of many callers onto
	// a few connections, several callers' statements per round trip
	// (multiplexing=on; see mux.go and the README's Multiplexing).
	// Transactions, checkouts and statements that leave session state
	// keep a connection of their own, and so does any statement while no
	// carrier runs and a connection is idle. A multiplexed statement's error is
	// its caller's alone; a caller whose context ends returns at once,
	// and its statement is either never sent or runs to its end
	// uncancelled, its result dropped.
	Multiplexing bool

	// BeforeConnect, when set, is called before each connection is dialled
	// with a copy of the connection settings, which it may change: a
	// password from a secrets manager or an IAM token that expires. An
	// error fails that connection attempt like a failed dial: the pool
	// retries with backoff, and a caller waiting with no connection open
	// gets the error. For setting a new connection up (SET, LISTEN), use
	// ConnConfig.AfterConnect, pgconn's hook, which the pool also runs again
	// after it reset a connection's session state.
	BeforeConnect func(ctx context.Context, cc *pgconn.Config) error

	// Logger receives the pool's events (connections opened and closed,
	// cancellations, failovers). nil is silent.
	Logger *slog.Logger
	// Tracer, when set, is told of every statement's start and end.
	Tracer Tracer
}

// dsnKey is one DSN key of our own: its name, its default, the line that
// documents it and its parser. dsnKeys is the single source of ParseConfig,
// of the defaults and of the README's table (a test compares them).
type dsnKey struct {
	name string
	// def is the value the key takes when a DSN does not set it; shown is
	// how the README writes a default that depends on the machine.
	def, shown string
	doc        string
	apply      func(c *Config, v string) error
}

var dsnKeys = []dsnKey{
	{"connection_count", strconv.Itoa(runtime.NumCPU()*2 + 1), "NumCPU×2+1", "connections the pool keeps open", func(c *Config, v string) error {
		n, err := parsePositive(v)
		c.ConnectionCount = n
		return err
	}},
	{"min_connections", "0", "", "connections the pool starts opening when it is created, before the first statement (at most connection_count)", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errors.New("must be a whole number, 0 or more")
		}
		c.MinConnections = n
		return nil
	}},
	{"query_mode", QueryModeAuto, "", "`auto`: named statements, one round trip per execution, falling back to unnamed ones behind a pooler that loses them (pgbouncer transaction pooling); `prepare`: named statements always; `describe`: unnamed statements always", func(c *Config, v string) error {
		if v != QueryModeAuto && v != QueryModePrepare && v != QueryModeDescribe {
			return fmt.Errorf("must be %q, %q or %q", QueryModeAuto, QueryModePrepare, QueryModeDescribe)
		}
		c.QueryMode = v
		return nil
	}},
	{"statement_cache_capacity", "512", "", "statements cached per connection", func(c *Config, v string) error {
		n, err := parsePositive(v)
		c.StatementCacheCapacity = n
		return err
	}},
	{"ping_after_idle", "1s", "", "a checkout pings a connection idle longer than this (0 = never)", durationKey(func(c *Config) *time.Duration { return &c.PingAfterIdle })},
	{"cancel_grace", "3s", "", "how long the server may take to stop a cancelled statement before its connection is replaced (the caller does not wait for it)", func(c *Config, v string) error {
		if err := durationKey(func(c *Config) *time.Duration { return &c.CancelGrace })(c, v); err != nil {
			return err
		}
		if c.CancelGrace == 0 {
			return errors.New("must be more than 0")
		}
		return nil
	}},
	{"max_cancel_dials", "16", "", "cancel requests in flight at once", func(c *Config, v string) error {
		n, err := parsePositive(v)
		c.MaxCancelDials = n
		return err
	}},
	{"max_conn_lifetime", "0", "", "replace connections older than this (0 = never)", durationKey(func(c *Config) *time.Duration { return &c.MaxConnLifetime })},
	{"max_conn_lifetime_jitter", "0", "", "random extra lifetime per connection", durationKey(func(c *Config) *time.Duration { return &c.MaxConnLifetimeJitter })},
	{"max_conn_idle_time", "0", "", "replace connections idle longer than this (0 = never)", durationKey(func(c *Config) *time.Duration { return &c.MaxConnIdleTime })},
	{"keepalive_interval", "0", "", "ping idle connections this often, below a proxy's idle timeout (0 = off)", durationKey(func(c *Config) *time.Duration { return &c.KeepaliveInterval })},
	{"multiplexing", "off", "", "`on`: autocommit statements of many callers share a few connections, several per round trip; transactions, checkouts and session state keep a connection of their own (see Multiplexing)", func(c *Config, v string) error {
		switch v {
		case "on":
			c.Multiplexing = true
		case "off":
			c.Multiplexing = false
		default:
			return errors.New(`must be "on" or "off"`)
		}
		return nil
	}},
}

func durationKey(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "0" {
			*field(c) = 0
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("not a duration such as 500ms or 2m")
		}
		if d < 0 {
			return fmt.Errorf("must not be negative")
		}
		*field(c) = d
		return nil
	}
}

func parsePositive(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("not an integer")
	}
	if n < 1 {
		return 0, fmt.Errorf("must be at least 1")
	}
	return n, nil
}

// ParseConfig parses a DSN in URL (postgres://user@host/db?key=value) or
// keyword/value (host=h user=u key=value) form, reading the PG* environment
// variables, passfile and service file the way libpq does. The pool keys in
// the table of the README are taken out before pgconn sees the rest.
//
// A bad value yields an error that names the key and what is wrong with the
// value; errors never contain the password.
func ParseConfig(dsn string) (*Config, error) {
	cc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, dsnError(err)
	}
	c := &Config{ConnConfig: cc}
	// Unknown keys land in RuntimeParams; ours are removed from there so that
	// they are never sent to the server as settings.
	for _, k := range dsnKeys {
		v, ok := cc.RuntimeParams[k.name]
		if !ok {
			v = k.def
		}
		delete(cc.RuntimeParams, k.name)
		if err := k.apply(c, strings.TrimSpace(v)); err != nil {
			return nil, &ConfigError{Key: k.name, Err: err}
		}
	}
	return c, nil
}

// dsnError rewrites pgconn's parse error without the connection string:
// pgconn redacts the password in it only on a best-effort basis, and a DSN
// that does not parse is exactly where that effort can fail.
func dsnError(err error) error {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return fmt.Errorf("pgpurepy: parse dsn: %w", err)
	}
	bare := *pe
	bare.ConnString = ""
	return &parseError{msg: strings.TrimPrefix(bare.Error(), "cannot parse ``: "), err: pe.Unwrap()}
}

type parseError struct {
	msg string
	err error
}

func (e *parseError) Error() string { return "pgpurepy: parse dsn: " + e.msg }
func (e *parseError) Unwrap() error { return e.err }

// ConfigError reports a DSN key of our own with a bad value. The value itself
// is not repeated, so nothing secret pasted into the wrong key leaks.
type ConfigError struct {
	Key string
	Err error
}

// Error names the key and what is wrong with its value.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("pgpurepy: dsn key %s: %v", e.Key, e.Err)
}

// Unwrap returns the problem with the value.
func (e *ConfigError) Unwrap() error { return e.Err }

// Copy returns a deep copy of c, so a copy can be changed and passed to
// NewConnectorConfig without touching the original.
func (c *Config) Copy() *Config {
	n := *c
	n.ConnConfig = c.ConnConfig.Copy()
	return &n
}
