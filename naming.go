package pgpurepy

import (
	"context"
	"strconv"
)

// Which statements go to the server under a name. A named statement is
// parsed and planned once per connection and then costs one Bind per
// execution; an unnamed one is parsed at each execution, in the same round
// trip. Names live on the server connection, and a pooler in transaction
// or statement mode (pgbouncer before 1.21, or without
// max_prepared_statements) moves a client between server connections, so
// in query_mode=auto:
//
//   - a session that reaches the server through a pooler (pooled) runs
//     statements inside transactions unnamed: a missing name there would
//     fail the transaction;
//   - outside transactions it uses names, and when the server answers that
//     one does not exist (SQLSTATE 26000, at Bind, before anything ran) the
//     statement runs again unnamed and the whole pool stops naming
//     statements (shared.unnamed), with one log line.
//
// Behind a pooler that keeps names working (pgbouncer 1.21+ with
// max_prepared_statements) nothing ever fails, and names stay in use
// outside transactions.

// named reports whether a statement described now for a call asking n is
// prepared under a name.
func (s *session) named(n naming) bool {
	switch n {
	case namingNamed:
		return true
	case namingUnnamed:
		return false
	}
	switch s.sh.cfg.QueryMode {
	case QueryModePrepare:
		return true
	case QueryModeDescribe:
		return false
	}
	return !s.sh.unnamed.Load() && (!s.pooled || !s.inTx())
}

// byName reports whether d, described earlier, runs under its name now; if
// not, it runs as an unnamed statement with the same description.
func (s *session) byName(d *stmtDesc) bool {
	return d.sd.Name != "" && (s.sh.cfg.QueryMode != QueryModeAuto || !s.pooled || !s.inTx())
}

// inTx reports whether the holder's statements run in a transaction, also
// one whose BEGIN has not been sent yet.
func (s *session) inTx() bool { return s.begin != "" || s.pg.TxStatus() != 'I' }

// nameLost handles the server's answer that d's named statement does not
// exist: in query_mode=auto, the pool names no more statements.
func (s *session) nameLost(d *stmtDesc) {
	if s.sh.cfg.QueryMode != QueryModeAuto || d.sd.Name == "" || s.sh.unnamed.Swap(true) {
		return
	}
	s.sh.log.warn("named statements do not survive on this server connection (a pooler in transaction mode?): the pool uses unnamed statements from now on",
		"statement", d.sd.Name)
}

// detectPooler, in query_mode=auto, sets pooled when the server's process
// id differs from the one the connection was given at startup, which a
// pooler makes up for the cancel requests it forwards. It costs a round
// trip per new connection.
func (s *session) detectPooler(ctx context.Context) error {
	if s.sh.cfg.QueryMode != QueryModeAuto {
		return nil
	}
	var pid string
	err := s.catalog(ctx, "SELECT pg_backend_pid()", nil, func(v [][]byte) error {
		pid = string(v[0])
		return nil
	})
	if err != nil {
		return err
	}
	s.pooled = pid != strconv.FormatUint(uint64(s.pg.PID()), 10)
	return nil
}
