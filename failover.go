package pgpurepy

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// failover follows which server is the writable one, for a pool whose DSN
// asks for one (target_session_attrs=read-write or primary). Every session
// belongs to a generation; a failover starts a new one, and sessions of
// older generations are replaced at their next checkout instead of failing
// writes.
type failover struct {
	// wanted is set when the pool wants a writable server; otherwise
	// nothing here does anything.
	wanted     bool
	generation atomic.Uint64
	stats      *counters
	log        logger

	mu     sync.Mutex // protects server
	server string     // address of the server the last connection reached
}

// wantsWritable reports whether cc's target_session_attrs asks for a
// writable server. pgconn keeps the setting only as the validation function
// it chose, so compare with those.
func wantsWritable(cc *pgconn.Config) bool {
	if cc.ValidateConnect == nil {
		return false
	}
	v := reflect.ValueOf(cc.ValidateConnect).Pointer()
	return v == reflect.ValueOf(pgconn.ValidateConnectTargetSessionAttrsReadWrite).Pointer() ||
		v == reflect.ValueOf(pgconn.ValidateConnectTargetSessionAttrsPrimary).Pointer()
}

// noteServer records which server a new connection reached and returns the
// generation the connection belongs to. When a new connection lands on
// another server than the last, the writable server changed: a failover.
func (f *failover) noteServer(pg *pgconn.PgConn) uint64 {
	if !f.wanted {
		return f.generation.Load()
	}
	addr := pg.Conn().RemoteAddr().String()
	f.mu.Lock()
	last := f.server
	f.server = addr
	if last != "" && last != addr {
		f.generation.Add(1)
	}
	generation := f.generation.Load()
	f.mu.Unlock()
	if last != "" && last != addr {
		f.stats.failovers.Add(1)
		f.log.warn("failover: writable server changed", "from", last, "to", addr)
	}
	return generation
}

var errNotWritable = errors.New("pgpurepy: connection is on a server that is no longer writable")

// checkWritable fails a connection that a failover left behind: opened in
// an earlier generation, or on a server that became read-only (a standby,
// or a primary fenced with default_transaction_read_only). The server
// reports both parameters unprompted, so this normally costs no round trip;
// grace bounds the one it may take. A server found read-only starts a new
// generation, so that the other connections on it are replaced at their
// checkout instead of each failing one write.
func (f *failover) checkWritable(ctx context.Context, pg *pgconn.PgConn, generation uint64, grace time.Duration) error {
	if !f.wanted {
		return nil
	}
	current := f.generation.Load()
	if generation == current && !serverReadOnly(ctx, pg, grace) {
		return nil
	}
	if generation == current {
		f.generation.Add(1)
	}
	f.stats.replacedForFailover.Add(1)
	return errNotWritable
}

// serverReadOnly reports whether the server, rather than this connection,
// is read-only. default_transaction_read_only is reported the same whether
// the server was fenced or the application ran SET on this connection, so
// when it is on the setting's source decides, at the cost of one round trip;
// inside a transaction that cannot be asked, and the connection is given the
// benefit of the doubt until its next checkout.
func serverReadOnly(ctx context.Context, pg *pgconn.PgConn, grace time.Duration) bool {
	if pg.ParameterStatus("in_hot_standby") == "on" {
		return true
	}
	if pg.ParameterStatus("default_transaction_read_only") != "on" || pg.TxStatus() != 'I' {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	res, err := pg.Exec(ctx, "SELECT source FROM pg_settings WHERE name = 'default_transaction_read_only'").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		return false
	}
	return string(res[0].Rows[0][0]) != "session"
}
