package pgpurepy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgpurepy/pgpurepy/internal/pool"
)

// Cancellation, in order:
//
//  1. The context of a running statement ends: pgconn calls HandleCancel
//     (cancel.go), which starts a cancel request in the background and
//     interrupts the session's framer. The caller's read returns a made-up
//     57014 at once, pgconn ends the statement normally, and finish gives
//     the caller its context's error.
//  2. finish hands the session to a recovery goroutine (startRecovery),
//     which reads and drops the server's real answer, waits for the cancel
//     request to complete and, unless the server spent it on the statement,
//     makes one empty round trip that absorbs it. All of it is bounded by the
//     pool's cancel grace; a session that does not recover in time is
//     closed and replaced.
//  3. Meanwhile the session belongs to the recovery: a holder that uses it
//     again waits in ready (bounded by its own context), and one that lets
//     it go leaves the release to the recovery (release).

// startRecovery hands the session to a recovery goroutine after a statement
// for which a cancel request went out; stmtErr is how pgconn ended it.
func (s *session) startRecovery(stmtErr error) {
	rec := &recovery{done: make(chan struct{})}
	s.recovery = rec
	s.sh.stats.recovering.Add(1)
	go func() {
		s.settleCancel(stmtErr)
		s.sh.stats.recovering.Add(-1)
		rec.mu.Lock()
		rec.ended = true
		then := rec.then
		rec.mu.Unlock()
		close(rec.done)
		if then != nil {
			then()
		}
	}()
}

// ready waits, bounded by ctx, until the session may run a statement, and
// reports why it may not, if it may not.
func (s *session) ready(ctx context.Context) error {
	if s.recovery == nil && s.cancel.fired.Load() {
		// A cancel fired during a call that does not pass through finish.
		s.startRecovery(nil)
	}
	if rec := s.recovery; rec != nil {
		select {
		case <-rec.done:
			s.recovery = nil
		default:
			select {
			case <-rec.done:
				s.recovery = nil
			case <-ctx.Done():
				return fmt.Errorf("pgpurepy: waiting for the connection to recover from a cancelled statement: %w", ctx.Err())
			}
		}
	}
	return s.usable()
}

// release gives the session back to the pool through res, or has it
// replaced when it cannot be reused; with state, session state its holder
// may have left is reset (see reset). During a recovery the recovery does
// it when it ends, so the caller never waits.
func (s *session) release(res *pool.Resource[*session], state bool) {
	if rec := s.recovery; rec != nil {
		s.recovery = nil
		rec.mu.Lock()
		if !rec.ended {
			rec.then = func() { s.release(res, state) }
			rec.mu.Unlock()
			return
		}
		rec.mu.Unlock()
	}
	if s.reset(state) {
		res.Release()
	} else {
		res.Destroy("broken")
	}
}

// settleCancel brings the session back to a clean state after a cancel
// request, so that no part of the cancelled statement and no cancel signal
// can reach the next statement. It reads and drops the statement's real end
// if the framer made one up, waits until the cancel request completed, and,
// unless the server ended the statement with 57014 (the request was spent
// on it; the 57014 that answers a CopyFail does not count), makes one empty
// round trip that absorbs the signal if it is still pending in the backend.
// The same round trip resynchronises pgconn's transaction status when the
// real one differs from the made-up one. The grace bounds it all; a session
// that does not make it is marked broken.
func (s *session) settleCancel(stmtErr error) {
	h, f := s.cancel, s.framer
	h.fired.Store(false)
	if s.pg.IsClosed() {
		s.lost(stmtErr)
		return
	}
	nc := s.pg.Conn()
	_ = nc.SetDeadline(time.Now().Add(s.sh.cfg.CancelGrace))
	stop := context.AfterFunc(s.sh.life, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()

	made := f.Owed()
	spent := isCode(stmtErr, "57014") && !isCopyFail(stmtErr) && !made
	resync := false
	if made {
		cancelled, status, err := f.Skip()
		if err != nil {
			s.lost(err)
			return
		}
		spent = cancelled
		resync = status != s.pg.TxStatus()
		if f.BeginUnseen() && status == 'I' && s.broken == nil {
			s.broken = errBeginCancelled
		}
	}
	f.Settled()
	if sent := h.requestDone(); sent != nil {
		<-sent
	}
	if !spent || resync {
		_, err := s.pg.Exec(context.Background(), ";").ReadAll()
		if err != nil && !isCode(err, "57014") {
			s.lost(err)
			return
		}
	}
	if !stop() {
		s.lost(context.Canceled)
		return
	}
	_ = nc.SetDeadline(time.Time{})
	s.sh.stats.cancelsKept.Add(1)
	if ct := s.sh.trace.cancel; ct != nil {
		ct.TraceCancelEnd(s.pg.PID(), true)
	}
}

// lost marks the session broken after a failed recovery.
func (s *session) lost(err error) {
	if err == nil {
		err = errors.New("connection closed")
	}
	s.broken = fmt.Errorf("recovery after a cancel failed: %w", err)
	s.sh.stats.cancelsLost.Add(1)
	if ct := s.sh.trace.cancel; ct != nil {
		ct.TraceCancelEnd(s.pg.PID(), false)
	}
	if !s.pg.IsClosed() {
		s.close()
	}
}
