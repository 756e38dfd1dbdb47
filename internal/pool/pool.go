// Package pool is a generic, persistent, fixed-size resource pool.
//
// It knows nothing of PostgreSQL or database/sql: the caller supplies Open,
// Close, and optional Check and Keepalive functions, and the pool keeps Size
// resources open, hands them out first-come-first-served, replaces the ones
// that die, and keeps counters for metrics.
//
// # Locking
//
// Lock order: Pool.mu is the only lock and it is a leaf. It is never held
// while calling Config.Open, Config.Close, Config.Check or Config.Keepalive
// (they may do network I/O), nor while blocking on a channel: hand-offs to
// waiters go through channels with a buffer of one that are sent to at most
// once per wait, so a send under the lock never blocks.
//
// Background goroutines (openers, closers, the maintenance loop) are started
// only while the lock is held and the pool is not closed, so Close can wait
// for all of them with one WaitGroup. Once the pool is closed, resources that
// come back are closed synchronously by whoever returns them.
package pool

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// ErrClosed is returned by Acquire after Close, and delivered to callers that
// were waiting in Acquire when Close was called.
var ErrClosed = errors.New("pool: closed")

// OpenError is what callers waiting in Acquire get when the Open that was to
// serve them failed: Err is the Open func's error, unchanged.
type OpenError struct{ Err error }

// Error prefixes the Open func's error.
func (e *OpenError) Error() string { return "pool: open: " + e.Err.Error() }

// Unwrap returns the Open func's error.
func (e *OpenError) Unwrap() error { return e.Err }

// Reasons under which the pool itself closes resources; see Stats.Closed.
// Resource.Destroy adds whatever reason its caller passes.
const (
	ReasonUnhealthy  = "unhealthy"   // Check returned an error
	ReasonLifetime   = "lifetime"    // older than MaxLifetime (+ jitter)
	ReasonIdleTime   = "idle_time"   // idle longer than MaxIdleTime
	ReasonKeepalive  = "keepalive"   // Keepalive returned an error
	ReasonPoolClosed = "pool_closed" // the pool was closed
)

const (
	defaultBackoffMin = 50 * time.Millisecond
	defaultBackoffMax = 5 * time.Second
)

// Panic messages for programmer misuse.
const (
	msgDoubleRelease = "pool: Release called on a resource that is not checked out"
	msgDoubleDestroy = "pool: Destroy called on a resource that is not checked out"
)

// Config describes the resources a Pool keeps. Open and Close are required.
type Config[T any] struct {
	// Size is the number of resources to keep open (>= 1).
	Size int

	// Open dials one resource. It is called from a background goroutine with
	// a context that is canceled by Pool.Close, never with an Acquire
	// caller's context (the result goes to whichever waiter is first in line),
	// so it should bound its own duration (a connect timeout).
	Open func(ctx context.Context) (T, error)

	// Close closes one resource. It may do I/O (e.g. send Terminate) but must
	// return in bounded time. It is called exactly once per opened resource.
	Close func(v T)

	// Check, if set, is called on a resource taken from the idle list before
	// Acquire hands it out, without the lock and with the Acquire caller's
	// context. idle is how long the resource sat idle. A non-nil error
	// destroys the resource (reason "unhealthy") and Acquire tries the next
	// idle one or waits for a replacement. Resources handed straight from a
	// Release, a keepalive or an Open to a waiter are not checked. nil means
	// always healthy.
	Check func(ctx context.Context, v T, idle time.Duration) error

	// MaxLifetime, if > 0, destroys (reason "lifetime") a resource older than
	// MaxLifetime plus a random jitter in [0, MaxLifetimeJitter), chosen once
	// per resource. It is checked at Release, at Acquire and by the
	// maintenance sweep; destroyed resources are replaced.
	MaxLifetime       time.Duration
	MaxLifetimeJitter time.Duration

	// MaxIdleTime, if > 0, destroys (reason "idle_time") resources that sat
	// idle longer than this, at Acquire and by the maintenance sweep. They are
	// replaced, so the pool stays at Size: this recycles connections rather
	// than shrinking the pool. A successful Keepalive counts as use.
	MaxIdleTime time.Duration

	// KeepaliveInterval, if > 0, runs a sweep every interval: each idle
	// resource that sat idle for at least the interval is taken out of the
	// idle list and passed to Keepalive (without the lock, with a context
	// that times out after the interval and is canceled by Close), then put
	// back as freshly used, or destroyed (reason "keepalive") on error.
	// Keepalive must be set if and only if KeepaliveInterval > 0.
	KeepaliveInterval time.Duration
	Keepalive         func(ctx context.Context, v T) error

	// BackoffMin and BackoffMax bound the delay between background retries
	// after a failed Open: the n-th consecutive retry waits a random duration
	// in [0, min(BackoffMax, BackoffMin*2^(n-1))) ("full jitter").
	// Defaults: 50ms and 5s.
	BackoffMin, BackoffMax time.Duration

	// Now is a seam for tests; nil means time.Now.
	Now func() time.Time
}

// Stats is a consistent snapshot of a Pool, taken under its lock.
type Stats struct {
	Max     int // Config.Size
	Total   int // open resources: Idle + InUse; never more than Max
	Idle    int // resources sitting idle, including ones momentarily taken out by a keepalive sweep
	InUse   int // resources checked out by Acquire (including ones being Checked)
	Opening int // Open calls in flight right now
	Waiting int // callers blocked in Acquire right now

	// Deficit is Max - Total - Opening: how many resources the pool lacks
	// and is not currently opening (it may be backing off after a failed
	// Open). It is never negative since Total + Opening <= Max always holds.
	Deficit int

	Acquires         uint64        // successful Acquires
	WaitedAcquires   uint64        // successful Acquires that had to wait in line
	WaitDuration     time.Duration // total time Acquire callers spent waiting in line, whatever the outcome
	CanceledAcquires uint64        // Acquires that ended because their context ended
	Opened           uint64        // successful Opens
	OpenFailures     uint64        // failed Opens

	// Closed counts closed resources by reason: "unhealthy", "lifetime",
	// "idle_time", "keepalive", "pool_closed", plus the reasons passed to
	// Resource.Destroy. Opened minus the sum of Closed is Total.
	Closed map[string]uint64
}

// Pool keeps Config.Size resources open and hands them out. Create it with
// New; the zero value is not usable.
type Pool[T any] struct {
	cfg       Config[T]
	now       func() time.Time
	bgCtx     context.Context // canceled by Close; passed to Open and Keepalive
	bgCancel  context.CancelFunc
	wg        sync.WaitGroup // background goroutines; Add only under mu while !closed
	closeOnce sync.Once
	// spare keeps waiters whose Acquire has returned, their channels empty,
	// for later Acquires that must wait: a pool smaller than its callers'
	// concurrency waits on nearly every Acquire, and a waiter with its
	// channel would be two allocations each time.
	spare sync.Pool

	mu         sync.Mutex // protects following fields
	closed     bool
	idle       []*Resource[T] // by usedAt: the one a holder released last is on top, handed out first
	total      int            // open resources: idle + checked out + maint
	maint      int            // taken out by a keepalive sweep
	opening    int            // Open calls in flight
	warm       bool           // an Open has succeeded: keep the pool at Size in the background
	refilling  bool           // the refill goroutine is running (opening or backing off)
	maintained bool           // the maintenance goroutine has been started
	head, tail *waiter[T]     // FIFO of waiting Acquires
	nWaiting   int
	closedBy   map[string]uint64 // Stats.Closed

	// Stats counters, also protected by mu.
	acquires, waitedAcquires, canceledAcquires uint64
	opened, openFailures                       uint64
	waitDuration                               time.Duration
}

// New validates cfg and returns a pool. It opens nothing: the first Acquire
// opens the first resource, after which the pool fills itself to Size in the
// background.
func New[T any](cfg Config[T]) (*Pool[T], error) {
	switch {
	case cfg.Size < 1:
		return nil, fmt.Errorf("pool: size %d must be at least 1", cfg.Size)
	case cfg.Open == nil:
		return nil, errors.New("pool: open func is required")
	case cfg.Close == nil:
		return nil, errors.New("pool: close func is required")
	case cfg.MaxLifetime < 0 || cfg.MaxLifetimeJitter < 0 || cfg.MaxIdleTime < 0 ||
		cfg.KeepaliveInterval < 0 || cfg.BackoffMin < 0 || cfg.BackoffMax < 0:
		return nil, errors.New("pool: durations must not be negative")
	case (cfg.KeepaliveInterval > 0) != (cfg.Keepalive != nil):
		return nil, errors.New("pool: keepalive func and keepalive interval must be set together")
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = defaultBackoffMin
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = defaultBackoffMax
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		return nil, fmt.Errorf("pool: backoff max %v is less than backoff min %v", cfg.BackoffMax, cfg.BackoffMin)
	}
	p := &Pool[T]{cfg: cfg, now: cfg.Now, closedBy: make(map[string]uint64)}
	if p.now == nil {
		p.now = time.Now
	}
	p.bgCtx, p.bgCancel = context.WithCancel(context.Background())
	return p, nil
}

// Start begins opening up to n resources now, in the background, as the
// first Acquire would: for a pool whose first callers should not wait for
// dials. Once one has opened, the pool fills itself to Size as after any
// first use. It returns at once; failures are retried with backoff and
// show in Stats.
func (p *Pool[T]) Start(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range n {
		if p.closed || p.deficitLocked() <= 0 {
			return
		}
		p.startOpenerLocked()
	}
}

// Acquire returns a resource for exclusive use until its Release or Destroy.
//
// It takes the idle resource a holder released most recently, ahead of ones
// opened or kept alive since, so that a caller running alone gets back the
// session state its last statement left (destroying on the way
// any that outlived MaxLifetime or MaxIdleTime, or failed Check). With none
// idle it waits in line, first come first served, for a Release or a new
// resource; if the pool has fewer than Size resources and is not already
// opening enough, it starts opening one in the background, and whatever
// arrives goes to the first in line.
//
// If an Open fails while the pool holds no live resources (so nothing would
// ever be released), every caller that was waiting when that Open began
// gets its error, wrapped as "pool: open: %w"; callers that came later wait
// for the next Open. The pool retries in the background with backoff while
// callers wait or, once an Open has ever succeeded, while it is short of Size.
//
// When ctx ends first, Acquire returns an error wrapping ctx.Err() (so
// errors.Is works) and counts a canceled acquire; a resource handed to it at
// that moment goes to the next in line or back to idle. After Close it
// returns ErrClosed.
func (p *Pool[T]) Acquire(ctx context.Context) (*Resource[T], error) {
	if err := ctx.Err(); err != nil {
		p.mu.Lock()
		p.canceledAcquires++
		p.mu.Unlock()
		return nil, fmt.Errorf("pool: acquire: %w", err)
	}
	for {
		now := p.now()
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		r := p.popIdleLocked(now)
		if r == nil {
			return p.waitLocked(ctx, now) // unlocks
		}
		r.state = stateAcquired
		idle := now.Sub(r.idleSince)
		p.acquires++
		p.mu.Unlock()
		if p.cfg.Check == nil {
			return r, nil
		}
		err := p.cfg.Check(ctx, r.value, idle)
		if err == nil {
			return r, nil
		}
		p.mu.Lock()
		p.acquires--
		closeNow := p.destroyLocked(r, ReasonUnhealthy)
		p.mu.Unlock()
		if closeNow {
			p.cfg.Close(r.value)
		}
		if err := ctx.Err(); err != nil {
			p.mu.Lock()
			p.canceledAcquires++
			p.mu.Unlock()
			return nil, fmt.Errorf("pool: acquire: %w", err)
		}
	}
}

// popIdleLocked pops the most recently released idle resource that has not
// expired, destroying expired ones on the way. It returns nil if none is left.
func (p *Pool[T]) popIdleLocked(now time.Time) *Resource[T] {
	for n := len(p.idle); n > 0; n = len(p.idle) {
		r := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if reason := p.expiredLocked(r, now); reason != "" {
			p.destroyLocked(r, reason) // not closed, so it closes in the background
			continue
		}
		return r
	}
	return nil
}

// expiredLocked reports why an idle r must be destroyed, or "".
func (p *Pool[T]) expiredLocked(r *Resource[T], now time.Time) string {
	if !r.expiresAt.IsZero() && !now.Before(r.expiresAt) {
		return ReasonLifetime
	}
	if p.cfg.MaxIdleTime > 0 && now.Sub(r.idleSince) > p.cfg.MaxIdleTime {
		return ReasonIdleTime
	}
	return ""
}

// waitLocked queues the caller and waits for a hand-off or the end of ctx.
// It is called with p.mu held and releases it.
func (p *Pool[T]) waitLocked(ctx context.Context, now time.Time) (*Resource[T], error) {
	if p.deficitLocked() > 0 {
		p.startOpenerLocked()
	}
	w, _ := p.spare.Get().(*waiter[T])
	if w == nil {
		w = &waiter[T]{ch: make(chan handoff[T], 1)}
	}
	w.start = now
	p.pushWaiterLocked(w)
	p.mu.Unlock()

	select {
	case h := <-w.ch:
		p.spare.Put(w) // sent to at most once, and that was it
		if h.err != nil {
			return nil, h.err
		}
		return h.r, nil
	case <-ctx.Done():
	}

	now = p.now()
	p.mu.Lock()
	p.canceledAcquires++
	var closeNow bool
	var r *Resource[T]
	if w.queued {
		p.removeWaiterLocked(w)
		p.waitDuration += now.Sub(w.start)
	} else if h := <-w.ch; h.r != nil { // sent under p.mu before we got it, so ready
		// Handed over just as ctx ended: undo the success and pass it on.
		r = h.r
		p.acquires--
		p.waitedAcquires--
		closeNow = p.checkinLocked(r, now)
	}
	p.mu.Unlock()
	p.spare.Put(w) // out of the queue, and its channel drained if it was sent to
	if closeNow {
		p.cfg.Close(r.value)
	}
	return nil, fmt.Errorf("pool: acquire: %w", ctx.Err())
}

// checkinLocked gives r (checked out, taken out for keepalive, or newly
// opened) to the first waiter or puts it on the idle list, idle since now,
// below any resource a holder released after r did.
// It destroys r instead if the pool is closed or r outlived MaxLifetime, and
// then reports whether the caller must call Close(r.value) itself after
// unlocking.
func (p *Pool[T]) checkinLocked(r *Resource[T], now time.Time) (closeNow bool) {
	switch {
	case p.closed:
		return p.destroyLocked(r, ReasonPoolClosed)
	case !r.expiresAt.IsZero() && !now.Before(r.expiresAt):
		return p.destroyLocked(r, ReasonLifetime)
	}
	if w := p.popWaiterLocked(); w != nil {
		r.state = stateAcquired
		p.acquires++
		p.waitedAcquires++
		p.waitDuration += now.Sub(w.start)
		w.ch <- handoff[T]{r: r}
		return false
	}
	r.state = stateIdle
	r.idleSince = now
	// Below every resource released after r: new and kept-alive ones do not
	// jump ahead of one a holder just gave back.
	i := len(p.idle)
	for i > 0 && p.idle[i-1].usedAt.After(r.usedAt) {
		i--
	}
	p.idle = slices.Insert(p.idle, i, r)
	return false
}

// destroyLocked removes r from the pool and counts reason. If the pool is
// open it closes r in a background goroutine and starts a replacement;
// otherwise it reports that the caller must call Close(r.value) itself after
// unlocking.
func (p *Pool[T]) destroyLocked(r *Resource[T], reason string) (closeNow bool) {
	r.state = stateDestroyed
	p.total--
	p.closedBy[reason]++
	if p.closed {
		return true
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.cfg.Close(r.value)
	}()
	if p.nWaiting > 0 && p.deficitLocked() > 0 {
		// Someone is waiting: open now even if the refill loop is backing off.
		p.startOpenerLocked()
	}
	p.startRefillLocked(0)
	return false
}

func (p *Pool[T]) deficitLocked() int { return p.cfg.Size - p.total - p.opening }

// startOpenerLocked starts one Open for a waiting Acquire or for Start. The
// caller has checked that the pool is open and deficitLocked() > 0.
func (p *Pool[T]) startOpenerLocked() {
	p.opening++
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		err := p.openOne()
		attempts := 0
		if err != nil {
			attempts = 1
		}
		p.mu.Lock()
		p.startRefillLocked(attempts)
		p.mu.Unlock()
	}()
}

// startRefillLocked starts the refill goroutine, which opens resources one
// at a time until the pool is at Size, if the pool needs it and it is not
// running. attempts > 0 means the last Open failed, so it backs off first.
func (p *Pool[T]) startRefillLocked(attempts int) {
	if p.refilling || !p.needRefillLocked() {
		return
	}
	p.refilling = true
	p.wg.Add(1)
	go p.refill(attempts)
}

// needRefillLocked reports whether the pool should open another resource in
// the background: it is open and short of Size, and either it has been warm
// (an Open succeeded once) or callers are waiting. A never-used or
// never-reachable pool with no demand dials nothing.
func (p *Pool[T]) needRefillLocked() bool {
	return !p.closed && p.deficitLocked() > 0 && (p.warm || p.nWaiting > 0)
}

func (p *Pool[T]) refill(attempts int) {
	defer p.wg.Done()
	for {
		if attempts > 0 && !p.sleep(p.backoff(attempts)) {
			p.mu.Lock()
			p.refilling = false
			p.mu.Unlock()
			return
		}
		p.mu.Lock()
		if !p.needRefillLocked() {
			p.refilling = false
			p.mu.Unlock()
			return
		}
		p.opening++
		p.mu.Unlock()
		if err := p.openOne(); err != nil {
			attempts++
		} else {
			attempts = 0
		}
	}
}

// backoff returns the full-jitter delay before retry number attempts (>= 1).
func (p *Pool[T]) backoff(attempts int) time.Duration {
	d := p.cfg.BackoffMax
	if shift := attempts - 1; shift < 30 {
		if b := p.cfg.BackoffMin << shift; b > 0 && b < d {
			d = b
		}
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// sleep waits for d, reporting false if the pool was closed first.
func (p *Pool[T]) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.bgCtx.Done():
		return false
	}
}

// openOne calls Open (counted in p.opening by the caller) and delivers the
// result: the new resource goes to the first waiter or to idle; on failure
// with no live resources every waiter gets the error.
func (p *Pool[T]) openOne() error {
	start := p.now()
	v, err := p.cfg.Open(p.bgCtx)
	now := p.now()
	p.mu.Lock()
	p.opening--
	if err != nil {
		p.openFailures++
		if p.total == 0 {
			// Only callers that waited when the Open began get its error:
			// it tells of the server as it was then (starting up, say),
			// and later callers wait for the next Open.
			p.failWaitersLocked(&OpenError{Err: err}, now, start)
		}
		p.mu.Unlock()
		return err
	}
	p.opened++
	p.total++
	r := &Resource[T]{p: p, value: v}
	if p.cfg.MaxLifetime > 0 {
		d := p.cfg.MaxLifetime
		if p.cfg.MaxLifetimeJitter > 0 {
			d += rand.N(p.cfg.MaxLifetimeJitter)
		}
		r.expiresAt = now.Add(d)
	}
	if !p.closed {
		p.warm = true
		p.startMaintenanceLocked()
	}
	closeNow := p.checkinLocked(r, now)
	p.mu.Unlock()
	if closeNow {
		p.cfg.Close(v)
	}
	return nil
}

// startMaintenanceLocked starts the sweep loop once, if any of
// KeepaliveInterval, MaxIdleTime or MaxLifetime is set. It runs every
// KeepaliveInterval, or else every half of the shorter of MaxIdleTime and
// MaxLifetime.
func (p *Pool[T]) startMaintenanceLocked() {
	if p.maintained {
		return
	}
	p.maintained = true
	every := p.cfg.KeepaliveInterval
	if every == 0 {
		for _, d := range []time.Duration{p.cfg.MaxIdleTime, p.cfg.MaxLifetime} {
			if d > 0 && (every == 0 || d/2 < every) {
				every = max(d/2, time.Millisecond)
			}
		}
	}
	if every == 0 {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.sweep()
			case <-p.bgCtx.Done():
				return
			}
		}
	}()
}

// sweep destroys idle resources past MaxLifetime or MaxIdleTime (they are
// replaced) and runs Keepalive on those idle for at least KeepaliveInterval.
func (p *Pool[T]) sweep() {
	now := p.now()
	var out []*Resource[T]
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	kept := p.idle[:0]
	for _, r := range p.idle {
		switch reason := p.expiredLocked(r, now); {
		case reason != "":
			p.destroyLocked(r, reason)
		case p.cfg.KeepaliveInterval > 0 && now.Sub(r.idleSince) >= p.cfg.KeepaliveInterval:
			r.state = stateMaint
			out = append(out, r)
		default:
			kept = append(kept, r)
		}
	}
	clear(p.idle[len(kept):])
	p.idle = kept
	p.maint += len(out)
	p.mu.Unlock()

	for _, r := range out {
		ctx, cancel := context.WithTimeout(p.bgCtx, p.cfg.KeepaliveInterval)
		err := p.cfg.Keepalive(ctx, r.value)
		cancel()
		now := p.now()
		p.mu.Lock()
		p.maint--
		var closeNow bool
		if err != nil {
			closeNow = p.destroyLocked(r, ReasonKeepalive)
		} else {
			closeNow = p.checkinLocked(r, now)
		}
		p.mu.Unlock()
		if closeNow {
			p.cfg.Close(r.value)
		}
	}
}

// Total returns the number of open resources (idle and checked out), as
// Stats().Total does but without copying a snapshot: for a caller that asks
// before each Acquire.
func (p *Pool[T]) Total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// Waiting returns the number of callers blocked in Acquire right now, as
// Stats does, without copying the counters: for a holder that gives its
// resource back early when others wait for one.
func (p *Pool[T]) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nWaiting
}

// Idle returns the number of resources sitting idle right now, as Stats
// does, without copying the counters: for a caller choosing between
// waiting for a resource and sharing one.
func (p *Pool[T]) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle) + p.maint
}

// Stats returns a consistent snapshot of the pool's gauges and counters.
func (p *Pool[T]) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	idle := len(p.idle) + p.maint
	closed := make(map[string]uint64, len(p.closedBy))
	for k, v := range p.closedBy {
		closed[k] = v
	}
	return Stats{
		Max:              p.cfg.Size,
		Total:            p.total,
		Idle:             idle,
		InUse:            p.total - idle,
		Opening:          p.opening,
		Waiting:          p.nWaiting,
		Deficit:          max(0, p.deficitLocked()),
		Acquires:         p.acquires,
		WaitedAcquires:   p.waitedAcquires,
		WaitDuration:     p.waitDuration,
		CanceledAcquires: p.canceledAcquires,
		Opened:           p.opened,
		OpenFailures:     p.openFailures,
		Closed:           closed,
	}
}

// Close stops the pool: later Acquires return ErrClosed, waiting ones get
// ErrClosed, idle resources are closed now (in parallel, reason
// "pool_closed"), and checked-out ones are closed when they are released or
// destroyed. Close cancels the context passed to Open and Keepalive and
// returns once every background goroutine (openers, closers, maintenance)
// has exited. It is idempotent; concurrent calls wait for the first.
func (p *Pool[T]) Close() {
	p.closeOnce.Do(func() {
		now := p.now()
		p.mu.Lock()
		p.closed = true
		idle := p.idle
		p.idle = nil
		for _, r := range idle {
			p.destroyLocked(r, ReasonPoolClosed)
		}
		p.failWaitersLocked(ErrClosed, now, now)
		p.mu.Unlock()

		p.bgCancel()
		var wg sync.WaitGroup
		for _, r := range idle {
			wg.Go(func() { p.cfg.Close(r.value) })
		}
		wg.Wait()
		p.wg.Wait()
	})
}
