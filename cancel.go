package pgpurepy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// cancelHandler is the pgconn context-watcher handler of one connection.
// When the context of a running statement ends it asks the server to cancel
// the statement instead of closing the socket, so the statement stops on the
// server and the connection survives. If the server has not answered within
// the pool's cancel grace, the socket's deadline is moved to now: pgconn then
// fails the read and closes the connection, and the pool replaces it.
//
// pgconn calls HandleCancel from the context's AfterFunc goroutine and waits
// for it to return before HandleUnwatchAfterCancel, so when a statement
// returns, the cancel request has been fully delivered: pgconn's
// CancelRequest waits until the server closes the cancel socket.
type cancelHandler struct {
	pg *pgconn.PgConn
	p  *poolState

	// fired is set by HandleCancel and cleared by session.settleCancel.
	fired atomic.Bool

	mu sync.Mutex // protects the fields below
	// expiry moves the socket deadline to now when the grace runs out.
	expiry  *time.Timer
	expired bool
}

var _ ctxwatch.Handler = (*cancelHandler)(nil)

func (h *cancelHandler) HandleCancel(context.Context) {
	h.fired.Store(true)
	grace := h.p.cfg.CancelGrace
	h.mu.Lock()
	h.expired = false
	h.expiry = time.AfterFunc(grace, h.expire)
	h.mu.Unlock()

	h.p.sendCancel(h.pg)
}

// sendCancel sends a cancel request for pg's running statement and waits
// until the server has processed it, bounded by the cancel grace and by
// max_cancel_dials requests in flight.
func (p *poolState) sendCancel(pg *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CancelGrace)
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

func (h *cancelHandler) expire() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.expiry == nil {
		return
	}
	h.expired = true
	_ = h.pg.Conn().SetDeadline(time.Now())
}

func (h *cancelHandler) HandleUnwatchAfterCancel() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.expiry != nil {
		h.expiry.Stop()
		h.expiry = nil
	}
	if h.expired {
		// The read that the deadline interrupted made pgconn close the
		// connection; if the statement won the race, the deadline must go.
		_ = h.pg.Conn().SetDeadline(time.Time{})
	}
}

// cancelStatement asks the server to cancel the statement whose result is
// being read, as a context cancellation would, but on the driver's own
// initiative (a result closed early). The statement's reader then ends with
// 57014 and session.settleCancel makes sure nothing stale is left.
func (s *session) cancelStatement() {
	s.cancel.fired.Store(true)
	s.p.sendCancel(s.pg)
}
