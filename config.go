package pgpurepy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
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
	// statements keep working. As in QueryModePrepare, a text is named
	// from its second run on a connection.
	QueryModeAuto = "auto"
	// QueryModePrepare prepares each distinct SQL text once per connection as a
	// named statement and executes it with one round trip afterwards. It is the
	// fastest mode and works with PostgreSQL directly and with pgbouncer 1.21 or
	// newer when max_prepared_statements is set. A text's first run on a
	// connection is described and run unnamed, and not cached: a text that
	// runs once (values written into the SQL) costs no server-side plan, no
	// deallocation and no place in the statement cache. The text is
	// prepared on its second run. pgx's QueryExecModeCacheStatement, or an
	// explicit Prepare, names a statement from its first run.
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
	// StandbyConnectionCount is the size of the standby pool that serves
	// the statements marked with PreferStandby on a multi-host DSN
	// (standby_connection_count); 0 means ConnectionCount.
	StandbyConnectionCount int
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
	// LoadBalanceHosts, set by load_balance_hosts=random, has each new
	// connection try the hosts of a multi-host DSN in a random order, as
	// libpq does, instead of in the order listed (load_balance_hosts=disable,
	// the default). target_session_attrs still decides which host a
	// connection keeps, so the connections spread over the hosts that
	// qualify.
	LoadBalanceHosts bool
	// Multiplexing queues the autocommit statements of many callers onto
	// a few connections, several callers' statements per round trip
	// (multiplexing=on; see mux.go and the README's Multiplexing).
	// Transactions, checkouts and statements that leave session state
	// keep a connection of their own, and so does any statement that
	// finds a connection idle. A multiplexed statement's error is its
	// caller's alone; a caller whose context ends returns at once,
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
	{"standby_connection_count", "0", "", "connections of the standby pool for the reads marked with PreferStandby on a multi-host DSN (0 = connection_count)", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errors.New("must be a whole number, 0 or more")
		}
		c.StandbyConnectionCount = n
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
	{"load_balance_hosts", "disable", "", "`random`: each new connection tries the hosts of a multi-host DSN in a random order, as in libpq (pgx v5 lacks it); `disable`: in the order listed", func(c *Config, v string) error {
		if v != "disable" && v != "random" {
			return errors.New(`must be "disable" or "random"`)
		}
		c.LoadBalanceHosts = v == "random"
		return nil
	}},
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

// libpqEnv names the environment variable libpq reads for those of our
// keys that are libpq's too and that pgconn does not read itself. A DSN's
// own value wins over it; our other keys come from the DSN only.
var libpqEnv = map[string]string{"load_balance_hosts": "PGLOADBALANCEHOSTS"}

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
	// Unknown keys land in RuntimeParams; ours, and other drivers' (see
	// foreignKeys), are removed from there so that they are never sent
	// to the server as settings.
	from, err := takeForeignKeys(cc.RuntimeParams)
	if err != nil {
		return nil, err
	}
	for _, k := range dsnKeys {
		v, ok := cc.RuntimeParams[k.name]
		env := ""
		if !ok {
			v = k.def
			if e := libpqEnv[k.name]; e != "" && os.Getenv(e) != "" {
				v, env = os.Getenv(e), e
			}
		}
		delete(cc.RuntimeParams, k.name)
		if err := k.apply(c, strings.TrimSpace(v)); err != nil {
			key := k.name
			if f, ok := from[k.name]; ok {
				key = f
			}
			if env != "" {
				key = env
			}
			return nil, &ConfigError{Key: key, Err: err}
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

// foreignKey is a DSN key of another Go driver that a DSN brings along when
// code moves to pgpurepy. pgconn does not know these keys and would send
// them to the server as settings, which refuses the connection ("unrecognized
// configuration parameter"), so ParseConfig translates each to a key of our
// own or takes it out. The README's table of them is compared with this one
// by a test.
type foreignKey struct {
	name, driver string
	// ours is the key of ours it sets; empty when it has no effect here.
	ours string
	// translate maps the value to one of ours; nil passes it unchanged.
	translate func(string) (string, error)
	doc       string
}

var foreignKeys = []foreignKey{
	{"default_query_exec_mode", "pgx", "query_mode", execMode, "`cache_statement` is `auto`; `cache_describe`, `describe_exec`, `exec` and `simple_protocol` are `describe` (nothing named is left on the server; arguments are never interpolated)"},
	{"description_cache_capacity", "pgx", "", nil, "no effect: descriptions are kept in the statement cache"},
	{"pool_max_conns", "pgxpool", "connection_count", nil, "`connection_count`"},
	{"pool_min_conns", "pgxpool", "min_connections", nil, "`min_connections`"},
	{"pool_max_conn_lifetime", "pgxpool", "max_conn_lifetime", nil, "`max_conn_lifetime`"},
	{"pool_max_conn_lifetime_jitter", "pgxpool", "max_conn_lifetime_jitter", nil, "`max_conn_lifetime_jitter`"},
	{"pool_max_conn_idle_time", "pgxpool", "max_conn_idle_time", nil, "`max_conn_idle_time`"},
	{"pool_min_idle_conns", "pgxpool", "", nil, "no effect: the pool keeps all its connections open"},
	{"pool_health_check_period", "pgxpool", "", nil, "no effect: a checkout checks the connection it hands out (`ping_after_idle`), and lifetimes are enforced as they pass"},
	{"pool_ping_timeout", "pgxpool", "", nil, "no effect: a checkout's ping is bounded by the caller's context"},
	{"binary_parameters", "lib/pq", "", nil, "no effect: arguments are sent in binary wherever their type allows"},
	{"disable_prepared_binary_result", "lib/pq", "", nil, "no effect: results are read in binary wherever their type allows"},
}

// execMode translates pgx's default_query_exec_mode.
func execMode(v string) (string, error) {
	switch v {
	case "cache_statement":
		return QueryModeAuto, nil
	case "cache_describe", "describe_exec", "exec", "simple_protocol":
		return QueryModeDescribe, nil
	}
	return "", errors.New("must be one of pgx's modes: cache_statement, cache_describe, describe_exec, exec, simple_protocol")
}

// takeForeignKeys takes the other drivers' keys out of params (pgconn's
// RuntimeParams) and sets our own keys they stand for. It returns, for each
// key of ours it set, the key the DSN wrote, so that an error names the key
// the user wrote. A key of ours set next to a foreign key for it is an
// error: which one to keep is the user's choice, not ours.
func takeForeignKeys(params map[string]string) (from map[string]string, err error) {
	for _, k := range foreignKeys {
		v, ok := params[k.name]
		if !ok {
			continue
		}
		delete(params, k.name)
		if k.ours == "" {
			continue
		}
		if _, both := params[k.ours]; both {
			return nil, &ConfigError{Key: k.name, Err: fmt.Errorf("%s's key for %s, which the DSN sets too; keep one of them", k.driver, k.ours)}
		}
		v = strings.TrimSpace(v)
		if k.translate != nil {
			var err error
			if v, err = k.translate(v); err != nil {
				return nil, &ConfigError{Key: k.name, Err: err}
			}
		}
		params[k.ours] = v
		if from == nil {
			from = make(map[string]string)
		}
		from[k.ours] = k.name
	}
	return from, nil
}
