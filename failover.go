package pgpurepy

import (
	"context"
	"errors"
	"reflect"

	"github.com/jackc/pgx/v5/pgconn"
)

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
// generation the session belongs to. When the pool wants the writable
// server and a new connection lands on another one than the last, the
// writable server changed: a failover. Sessions of earlier generations are
// then replaced at their next checkout instead of failing writes.
func (p *poolState) noteServer(pg *pgconn.PgConn) uint64 {
	if !p.wantsPrimary {
		return p.generation.Load()
	}
	addr := pg.Conn().RemoteAddr().String()
	p.serverMu.Lock()
	defer p.serverMu.Unlock()
	if p.server != "" && p.server != addr {
		p.stats.failovers.Add(1)
		p.generation.Add(1)
		p.logWarn("failover: writable server changed", "from", p.server, "to", addr)
	}
	p.server = addr
	return p.generation.Load()
}

var errNotWritable = errors.New("pgpurepy: connection is on a server that is no longer writable")

// checkWritable fails a session that a failover left behind: opened before
// the last failover, or on a server that became read-only (a standby, or a
// primary fenced with default_transaction_read_only). The server reports
// both parameters unprompted, so this normally costs no round trip. A server
// found read-only starts a new generation, so that the other sessions on it
// are replaced at their checkout instead of each failing one write.
func (p *poolState) checkWritable(ctx context.Context, s *session) error {
	if !p.wantsPrimary {
		return nil
	}
	if s.generation == p.generation.Load() && !s.serverReadOnly(ctx) {
		return nil
	}
	if s.generation == p.generation.Load() {
		p.generation.Add(1)
	}
	p.stats.replacedForFailover.Add(1)
	return errNotWritable
}

// serverReadOnly reports whether the server, rather than this session, is
// read-only. default_transaction_read_only is reported the same whether the
// server was fenced or the application ran SET on this session, so when it
// is on the setting's source decides, at the cost of one round trip; inside
// a transaction that cannot be asked, and the session is given the benefit
// of the doubt until its next checkout.
func (s *session) serverReadOnly(ctx context.Context) bool {
	if s.pg.ParameterStatus("in_hot_standby") == "on" {
		return true
	}
	if s.pg.ParameterStatus("default_transaction_read_only") != "on" || s.pg.TxStatus() != 'I' {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.p.cfg.CancelGrace)
	defer cancel()
	res, err := s.pg.Exec(ctx, "SELECT source FROM pg_settings WHERE name = 'default_transaction_read_only'").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		return false
	}
	return string(res[0].Rows[0][0]) != "session"
}
