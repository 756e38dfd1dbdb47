package pgpurepy

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// A transaction's BEGIN waits in session.begin until its first statement.
// An extended-protocol statement carries it: the framer writes the BEGIN
// (Parse, Bind, Execute, no Sync) in front of the statement's messages, which
// end with a Sync, so the server runs both in one round trip, and if the
// BEGIN failed it skips the statement up to the Sync. The framer takes the
// BEGIN's answer out of what pgconn reads. A simple-protocol statement
// (text with several statements) sends the BEGIN first, in a round trip of
// its own: after a simple Query a failed BEGIN would leave the server
// waiting for a Sync. A Ping is not part of the transaction and goes
// without it.

// carryBegin arms the framer with the pending BEGIN, if there is one, for
// the calls that follow; landBegin must run after them.
func (s *session) carryBegin() bool {
	if s.begin == "" {
		return false
	}
	s.framer.ArmBegin(s.begin)
	return true
}

// landBegin ends what carryBegin started: the BEGIN went out with the first
// write, or, if nothing was written (an argument that did not encode), it
// stays pending for the next statement. A refusal of the BEGIN is acted on
// by finish, which every failed call passes through before the holder can
// send anything else.
func (s *session) landBegin() {
	if s.framer.DisarmBegin() {
		s.begin = ""
	}
}

// unsentBegin reports whether the transaction's BEGIN never went to the
// server, and forgets it: the transaction then ends with no round trip, as
// nothing happened in it.
func (s *session) unsentBegin() bool {
	if s.begin == "" {
		return false
	}
	s.begin = ""
	return true
}

// errBeginCancelled breaks a session whose transaction's first statement
// was cancelled before the server had begun the transaction: the holder's
// later statements must not run outside it.
var errBeginCancelled = errors.New("pgpurepy: the transaction did not begin: its BEGIN was cancelled with the first statement")

// checkBegin, after every statement, breaks the session when the server
// refused the BEGIN the statement carried: the statement failed with the
// BEGIN's error, and the holder's transaction is not open, so nothing more
// may run as part of it.
func (s *session) checkBegin(err error) {
	if s.framer.BeginFailed() && s.broken == nil {
		s.broken = fmt.Errorf("pgpurepy: the transaction did not begin: %w", err)
	}
}

// beginNow sends a pending BEGIN in a round trip of its own. Its error is
// for the caller to pass through finish.
func (s *session) beginNow(ctx context.Context) error {
	if s.begin == "" {
		return nil
	}
	_, err := s.pg.Exec(ctx, s.begin).ReadAll()
	if err != nil {
		// Cancelled, it stays pending: sent again, it would at worst meet
		// the one that did run, which the server answers with a warning.
		if ctx.Err() == nil && s.broken == nil {
			s.broken = fmt.Errorf("pgpurepy: the transaction did not begin: %w", err)
		}
		return err
	}
	s.begin = ""
	return nil
}

// beginSQL is the BEGIN of a transaction with the isolation level and
// access mode database/sql asks for.
func beginSQL(level sql.IsolationLevel, readOnly bool) (string, error) {
	q := "BEGIN"
	switch level {
	case sql.LevelDefault:
	case sql.LevelReadUncommitted:
		q += " ISOLATION LEVEL READ UNCOMMITTED"
	case sql.LevelReadCommitted:
		q += " ISOLATION LEVEL READ COMMITTED"
	case sql.LevelRepeatableRead, sql.LevelSnapshot:
		q += " ISOLATION LEVEL REPEATABLE READ"
	case sql.LevelSerializable:
		q += " ISOLATION LEVEL SERIALIZABLE"
	default:
		return "", fmt.Errorf("pgpurepy: isolation level %s is not supported by PostgreSQL", level)
	}
	if readOnly {
		q += " READ ONLY"
	}
	return q, nil
}
