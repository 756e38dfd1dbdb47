package pgpurepy

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/pgpurepy/pgpurepy/internal/wire"
)

// canceller sends the cancel requests of one pool's connections.
type canceller struct {
	// grace bounds each request, and the wait for a free slot.
	grace time.Duration
	// dials bounds the requests in flight (max_cancel_dials): a semaphore.
	dials chan struct{}
	// life ends when the pool is closed; requests in flight stop with it.
	life  context.Context
	stats *counters
	log   logger
}

// start sends a cancel request for pg's running statement in the
// background and returns a channel closed when the server has processed it
// (pgconn's CancelRequest waits until the server closes the cancel socket),
// or when it failed, within the grace.
func (c *canceller) start(pg *pgconn.PgConn) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.send(pg)
	}()
	return done
}

// send sends one cancel request, waiting for a free slot among the
// requests in flight, bounded by the grace and by the pool's life.
func (c *canceller) send(pg *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(c.life, c.grace)
	defer cancel()
	select {
	case c.dials <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-c.dials }()
	c.stats.cancelsSent.Add(1)
	if err := pg.CancelRequest(ctx); err != nil {
		c.log.warn("cancel request failed", "pid", pg.PID(), "err", err)
	}
}

// cancelHandler is the pgconn context-watcher handler of one connection.
// When a statement's context ends it interrupts the connection's Framer and
// sends a cancel request; what follows is in recovery.go.
//
// pgconn calls HandleCancel from the context's AfterFunc goroutine and waits
// for it to return before HandleUnwatchAfterCancel and before the statement
// returns, so what HandleCancel sets is visible to finish.
type cancelHandler struct {
	pg *pgconn.PgConn
	f  *wire.Framer
	c  *canceller

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

// HandleCancel runs when the context of a statement ends: it makes the next
// read that would wait on the server end the statement, and sends a cancel
// request, without waiting for either.
func (h *cancelHandler) HandleCancel(context.Context) {
	h.fired.Store(true)
	h.f.Interrupt()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sent = h.c.start(h.pg)
	h.expired = false
	h.expiry = time.AfterFunc(h.c.grace, h.expire)
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
