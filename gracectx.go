package pgpurepy

import (
	"context"
	"time"
)

// graceCtx is the context of the round trips of a checkout's health check:
// context.WithTimeout(context.WithoutCancel(parent), grace), made on first
// use. The check normally makes no round trip and so no context and no
// timer. One lives in each session and is reset by every check: only the
// check's goroutine calls its methods (pgconn's context watcher registers
// with the inner context, which Value exposes, and the watch has ended when
// a pgconn call returns).
type graceCtx struct {
	parent context.Context
	grace  time.Duration
	ctx    context.Context
	cancel context.CancelFunc
}

var _ context.Context = (*graceCtx)(nil)

func (g *graceCtx) reset(parent context.Context, grace time.Duration) {
	*g = graceCtx{parent: parent, grace: grace}
}

func (g *graceCtx) get() context.Context {
	if g.ctx == nil {
		g.ctx, g.cancel = context.WithTimeout(context.WithoutCancel(g.parent), g.grace)
	}
	return g.ctx
}

// stop releases the timer, if one was made, and the parent.
func (g *graceCtx) stop() {
	if g.cancel != nil {
		g.cancel()
	}
	g.parent = nil
}

func (g *graceCtx) Deadline() (time.Time, bool) { return g.get().Deadline() }
func (g *graceCtx) Done() <-chan struct{}       { return g.get().Done() }
func (g *graceCtx) Err() error                  { return g.get().Err() }
func (g *graceCtx) Value(key any) any           { return g.get().Value(key) }
