package pgpurepy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/pgpurepy/pgpurepy/internal/pool"
)

// Cancellation, in order:
//
//  1. The context of a running statement ends: pgconn calls HandleCancel,
//     which starts a cancel request in the background and interrupts the
//     session's framer. The caller's read returns a made-up 57014 at once,
//     pgconn ends the statement normally, and finish gives the caller its
//     context's error.
//  2. finish hands the session to a recovery goroutine (startRecovery),
//     which reads and drops the server's real answer, waits for the cancel
//     request to complete and, unless the server spent it on the statement,
//     makes one empty round trip that absorbs it. All of it is bounded by the
//     pool's cancel grace; a session that does not recover in time is
//     closed and replaced.
//  3. Meanwhile the session belongs to the recovery: a holder that uses it
//     again waits in ready (bounded by its own context), and one that lets
//     it go leaves the release to the recovery (release).

// cancelHandler is the pgconn context-watcher handler of one connection.
//
// pgconn calls HandleCancel from the context's AfterFunc goroutine and waits
// for it to return before HandleUnwatchAfterCancel and before the statement
// returns, so what HandleCancel sets is visible to finish.
type cancelHandler struct {
	pg *pgconn.PgConn
	p  *poolState
	// f is the connection's framer.
	f *framer

	// fired is set when a cancel request went out for the session's last
	// statement, and cleared by its recovery.
	fired atomic.Bool

	mu sync.Mutex // protects the fields below
	// sent is closed when the last cancel request has completed.
	sent chan struct{}
	// expiry moves the socket deadline to now when the grace runs out: the
	// last bound on a call whose statement the framer could not end (pgconn
	// then closes the connection).
	expiry  *time.Timer
	expired bool
}

var _ ctxwatch.Handler = (*cancelHandler)(nil)

// HandleCancel runs when the context of a statement ends: it interrupts the
// framer and sends a cancel request, without waiting for either.
func (h *cancelHandler) HandleCancel(context.Context) {
	h.cancel()
	h.mu.Lock()
	h.expired = false
	h.expiry = time.AfterFunc(h.p.cfg.CancelGrace, h.expire)
	h.mu.Unlock()
}

// cancel asks the server to cancel the running statement and makes the
// next read that would wait on the server end it.
func (h *cancelHandler) cancel() {
	h.fired.Store(true)
	h.f.interrupt()
	h.mu.Lock()
	h.sent = h.p.startCancel(h.pg)
	h.mu.Unlock()
}

func (h *cancelHandler) expire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.expiry == nil {
		return
	}
	h.expired = true
	_ = h.pg.Conn().SetDeadline(time.Now())
}

// HandleUnwatchAfterCancel runs when the cancelled statement has returned:
// the grace timer is no longer needed.
func (h *cancelHandler) HandleUnwatchAfterCancel() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.expiry != nil {
		h.expiry.Stop()
		h.expiry = nil
	}
	if h.expired {
		// If the statement won the race, the deadline must go.
		_ = h.pg.Conn().SetDeadline(time.Time{})
	}
}

// requestDone returns a channel closed when the last cancel request has
// completed.
func (h *cancelHandler) requestDone() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sent
}

// startCancel sends a cancel request for pg's running statement in the
// background and returns a channel closed when the server has processed it
// (pgconn's CancelRequest waits until the server closes the cancel socket),
// or when it failed, within the cancel grace.
func (p *poolState) startCancel(pg *pgconn.PgConn) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.sendCancel(pg)
	}()
	return done
}

// sendCancel sends one cancel request, waiting for a free slot among the
// max_cancel_dials requests in flight, bounded by the cancel grace and by
// the pool's life.
func (p *poolState) sendCancel(pg *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(p.life, p.cfg.CancelGrace)
	defer cancel()
	select {
	case p.cancelDials <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-p.cancelDials }()
	p.stats.cancelsSent.Add(1)
	if err := pg.CancelRequest(ctx); err != nil {
		p.logWarn("cancel request failed", "pid", pg.PID(), "err", err)
	}
}

// recovery is a session's way back after a cancel request: while it runs,
// the session belongs to its goroutine.
type recovery struct {
	done chan struct{}

	mu    sync.Mutex // protects the fields below
	ended bool
	// then runs when the recovery ends; release sets it for a holder that
	// let the session go meanwhile.
	then func()
}

// startRecovery hands the session to a recovery goroutine after a statement
// for which a cancel request went out; stmtErr is how pgconn ended it.
func (s *session) startRecovery(stmtErr error) {
	rec := &recovery{done: make(chan struct{})}
	s.recovery = rec
	s.p.stats.recovering.Add(1)
	go func() {
		s.settleCancel(stmtErr)
		s.p.stats.recovering.Add(-1)
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
	if err := s.usable(); err != nil {
		return err
	}
	return s.flushDrops(ctx)
}

// release gives the session back to the pool through res, or has it
// replaced when it cannot be reused. During a recovery the recovery does it
// when it ends, so the caller never waits.
func (s *session) release(res *pool.Resource[*session]) {
	if rec := s.recovery; rec != nil {
		s.recovery = nil
		rec.mu.Lock()
		if !rec.ended {
			rec.then = func() { s.release(res) }
			rec.mu.Unlock()
			return
		}
		rec.mu.Unlock()
	}
	if s.resetTx() {
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
// on it), makes one empty round trip that absorbs the signal if it is still
// pending in the backend. The same round trip resynchronises pgconn's
// transaction status when the real one differs from the made-up one. The
// grace bounds it all; a session that does not make it is marked broken.
func (s *session) settleCancel(stmtErr error) {
	h, f := s.cancel, s.framer
	h.fired.Store(false)
	if s.pg.IsClosed() {
		s.lost(stmtErr)
		return
	}
	nc := s.pg.Conn()
	_ = nc.SetDeadline(time.Now().Add(s.p.cfg.CancelGrace))
	stop := context.AfterFunc(s.p.life, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()

	made := f.owed > 0
	spent := isCode(stmtErr, "57014") && !made
	resync := false
	if made {
		cancelled, status, err := f.skip()
		if err != nil {
			s.lost(err)
			return
		}
		spent = cancelled
		resync = status != s.pg.TxStatus()
		if f.leadUnseen {
			f.leadUnseen = false
			if status == 'I' && s.broken == nil {
				s.broken = errBeginCancelled
			}
		}
	}
	f.settled()
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
	s.p.stats.cancelsKept.Add(1)
}

// lost marks the session broken after a failed recovery.
func (s *session) lost(err error) {
	if err == nil {
		err = errors.New("connection closed")
	}
	s.broken = fmt.Errorf("recovery after a cancel failed: %w", err)
	s.p.stats.cancelsLost.Add(1)
	if !s.pg.IsClosed() {
		s.close()
	}
}
