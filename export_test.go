package pgpurepy

// What the tests of package pgpurepy_test need from inside the package, and
// no more. Each entry names the test that needs it and why the public API
// cannot do it.

import (
	"context"
	"database/sql/driver"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// DSNKey is one row of config.go's table of our own DSN keys; Shown is how
// the README writes a default that depends on the machine.
type DSNKey struct{ Name, Default, Shown, Doc string }

// DSNKeys returns the table of our own DSN keys (dsnKeys), which nothing
// public lists. TestParseConfigKeysCovered checks that every row has a test
// case, a default and a doc line; TestParseConfigAllKeysAtOnce,
// TestParseConfigEnvironment and FuzzParseConfig set, or look for, every key
// ParseConfig takes out of a DSN; TestREADMEListsDSNKeys compares it with
// the README's table.
func DSNKeys() []DSNKey {
	keys := make([]DSNKey, len(dsnKeys))
	for i, k := range dsnKeys {
		keys[i] = DSNKey{Name: k.name, Default: k.def, Shown: k.shown, Doc: k.doc}
	}
	return keys
}

// CheckoutSession checks a session out of x's pool without handing it to
// anyone, and returns its socket, its checkout health check (run as for a
// session that did not sit idle) and a function that destroys it.
// TestConvCheckoutWithParkedReader needs all three: it parks a reader on the
// socket, as pgconn's background reader can, runs the check, which must not
// block on it, and then closes the socket and destroys the session. Nothing
// public exposes a session's socket or runs the check on demand.
func CheckoutSession(ctx context.Context, x *Pool) (nc net.Conn, check func(context.Context) error, destroy func(), err error) {
	res, err := x.c.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	s := res.Value()
	return s.pg.Conn(), func(ctx context.Context) error { return s.check(ctx, 0) }, func() { res.Destroy("test") }, nil
}

// BeginWith begins a transaction on c as database/sql's BeginTx does (the
// BEGIN waits for the first statement), with begin as the BEGIN's text.
// TestTxBeginRefused needs it to force what a healthy server never does, a
// BEGIN that fails: every sql.TxOptions gives a BEGIN the server accepts, and
// the levels PostgreSQL lacks are refused before anything is sent.
func BeginWith(ctx context.Context, c *Conn, begin string) (driver.Tx, error) {
	tx, err := c.c.BeginTx(ctx, driver.TxOptions{})
	if err != nil {
		return nil, err
	}
	c.c.s.begin = begin
	return tx, nil
}

// ForeignKey is one row of config.go's table of other drivers' DSN
// keys; Ours is empty for a key that has no effect.
type ForeignKey struct{ Name, Driver, Ours, Doc string }

// ForeignKeys returns that table, which nothing public lists.
// TestForeignKeysEachTranslated sets every key in a DSN, and
// TestREADMEListsForeignKeys compares the table with the README's.
func ForeignKeys() []ForeignKey {
	keys := make([]ForeignKey, len(foreignKeys))
	for i, k := range foreignKeys {
		keys[i] = ForeignKey{Name: k.name, Driver: k.driver, Ours: k.ours, Doc: k.doc}
	}
	return keys
}

// ShuffleHosts is the dialler's load_balance_hosts=random on cc.
// TestLoadBalanceHostsKeepsTLSOrder needs it to see the order of many
// shuffles, including the TLS entries of sslmode=prefer, which no server
// shows (a connection reports only the host it kept).
func ShuffleHosts(cc *pgconn.Config) { shuffleHosts(cc) }

// MuxQueued returns how many statements wait in x's multiplexer for a
// carrier, 0 with multiplexing off. TestMuxErrorFailsOnlyItsCaller needs
// it to know that every statement of the batch it builds is queued before
// it lets the carrier have the pool's only connection: nothing public
// tells a queued statement from one whose caller has not yet called.
func MuxQueued(x *Pool) int {
	m, ok := x.c.mux.(*mux)
	if !ok {
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queue)
}

// SetMuxSlow sets how long a multiplexed statement may run before its text
// is routed to connections of its own, for the pools opened until restore
// is called. The multiplexer tests that count statements need it: on a
// loaded machine (the race detector, two cores) a 5 ms statement is noise,
// and a test must count what it sent, not what the scheduler did.
func SetMuxSlow(d time.Duration) (restore func()) {
	old := muxSlow
	muxSlow = d
	return func() { muxSlow = old }
}

// MuxCarriers returns how many carriers run in x's multiplexer.
func MuxCarriers(x *Pool) int {
	m, ok := x.c.mux.(*mux)
	if !ok {
		return 0
	}
	return int(m.carriers.Load())
}

// Bounds of the multiplexer's routing of large results.
const (
	MuxLargeRows  = muxLargeRows
	MuxLargeProbe = muxLargeProbe
)

// SetMuxQuiet sets whether a multiplexable statement runs on a connection
// of its own while a connection is idle, for the pools
// opened until restore is called. The multiplexer tests that run one
// statement at a time clear it: otherwise none of their statements would
// be multiplexed, and nothing public forces one to be.
func SetMuxQuiet(on bool) (restore func()) {
	old := muxQuiet
	muxQuiet = on
	return func() { muxQuiet = old }
}
