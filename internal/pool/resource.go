package pool

// Lock order: see the package comment in pool.go (Pool.mu is the only lock).

import "time"

type resState uint8

const (
	stateIdle      resState = iota // in p.idle
	stateAcquired                  // checked out by a caller
	stateMaint                     // taken out for keepalive
	stateDestroyed                 // removed from the pool; Close called or about to be
)

// Resource is one checked-out value. The pool reuses one Resource per pooled
// value across checkouts, so a *Resource must not be used after Release or
// Destroy.
type Resource[T any] struct {
	p         *Pool[T]
	value     T
	expiresAt time.Time // zero: no MaxLifetime

	// Protected by p.mu.
	state     resState
	idleSince time.Time
	usedAt    time.Time // the last Release; zero if never acquired
}

// Value returns the pooled value.
func (r *Resource[T]) Value() T { return r.value }

// Release returns the resource to the first waiting Acquire, or to the idle
// list. It destroys it instead (and closes it in the background) if the pool
// is closed ("pool_closed"; then Close runs synchronously in the caller) or
// it outlived MaxLifetime ("lifetime"). Calling Release or Destroy again on
// the same checkout panics; because Resources are reused, this is detected
// only until the value is acquired again.
func (r *Resource[T]) Release() {
	p := r.p
	now := p.now()
	p.mu.Lock()
	if r.state != stateAcquired {
		p.mu.Unlock()
		panic(msgDoubleRelease)
	}
	r.usedAt = now
	closeNow := p.checkinLocked(r, now)
	p.mu.Unlock()
	if closeNow {
		p.cfg.Close(r.value)
	}
}

// Destroy removes the resource from the pool, closes it in a background
// goroutine (synchronously if the pool is closed) and starts opening a
// replacement in the background. reason is counted in Stats.Closed. Calling
// Release or Destroy again on the same checkout panics (see Release).
func (r *Resource[T]) Destroy(reason string) {
	p := r.p
	p.mu.Lock()
	if r.state != stateAcquired {
		p.mu.Unlock()
		panic(msgDoubleDestroy)
	}
	closeNow := p.destroyLocked(r, reason)
	p.mu.Unlock()
	if closeNow {
		p.cfg.Close(r.value)
	}
}
