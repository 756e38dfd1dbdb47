package pool

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeConn is the pooled value in tests. holders catches a value handed to
// two callers at once; closes catches double or missing Close calls.
type fakeConn struct {
	id        int
	holders   atomic.Int32
	closes    atomic.Int32
	unhealthy atomic.Bool
}

// factory opens and closes fakeConns and remembers all of them.
type factory struct {
	t       testing.TB
	failing atomic.Bool   // Open fails with errOpen
	gate    chan struct{} // if non-nil, Open waits for a receive before deciding
	entered chan struct{} // if non-nil, Open sends on it when it begins
	mu      sync.Mutex
	conns   []*fakeConn
}

var errOpen = errors.New("fake: connection refused")

func (f *factory) open(ctx context.Context) (*fakeConn, error) {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.failing.Load() {
		return nil, errOpen
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &fakeConn{id: len(f.conns)}
	f.conns = append(f.conns, c)
	return c, nil
}

func (f *factory) close(c *fakeConn) {
	if n := c.closes.Add(1); n != 1 {
		f.t.Errorf("conn %d closed %d times", c.id, n)
	}
}

// checkAllClosed reports conns not closed exactly once; call after Close with
// everything released.
func (f *factory) checkAllClosed() {
	if f.t.Failed() {
		return // a failed test may have left resources checked out
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		if n := c.closes.Load(); n != 1 {
			f.t.Errorf("conn %d closed %d times, want 1", c.id, n)
		}
	}
}

func (f *factory) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// newTestPool returns a pool of fakeConns; edit adjusts its config. The pool
// is closed at cleanup, and every conn must have been closed exactly once.
func newTestPool(t testing.TB, size int, edit func(*Config[*fakeConn])) (*Pool[*fakeConn], *factory) {
	t.Helper()
	f := &factory{t: t}
	cfg := Config[*fakeConn]{Size: size, Open: f.open, Close: f.close, BackoffMin: time.Millisecond, BackoffMax: 2 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		f.checkAllClosed()
	})
	return p, f
}

// eventually polls cond with a generous bound.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func waitStats(t testing.TB, p *Pool[*fakeConn], what string, cond func(Stats) bool) Stats {
	t.Helper()
	var s Stats
	eventually(t, what, func() bool { s = p.Stats(); return cond(s) })
	return s
}

func warm(t testing.TB, p *Pool[*fakeConn]) {
	t.Helper()
	r, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
	waitStats(t, p, "warm-up", func(s Stats) bool { return s.Idle == s.Max && s.Opening == 0 })
}

func mustAcquire(t testing.TB, p *Pool[*fakeConn]) *Resource[*fakeConn] {
	t.Helper()
	r, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// acquireAsync starts an Acquire in a goroutine and returns its result channel.
func acquireAsync(ctx context.Context, p *Pool[*fakeConn]) <-chan handoff[*fakeConn] {
	ch := make(chan handoff[*fakeConn], 1)
	go func() {
		r, err := p.Acquire(ctx)
		ch <- handoff[*fakeConn]{r: r, err: err}
	}()
	return ch
}

func TestNewValidates(t *testing.T) {
	open := func(context.Context) (int, error) { return 0, nil }
	closeFn := func(int) {}
	for name, cfg := range map[string]Config[int]{
		"size":      {Size: 0, Open: open, Close: closeFn},
		"open":      {Size: 1, Close: closeFn},
		"close":     {Size: 1, Open: open},
		"negative":  {Size: 1, Open: open, Close: closeFn, MaxIdleTime: -1},
		"keepalive": {Size: 1, Open: open, Close: closeFn, KeepaliveInterval: time.Second},
		"backoff":   {Size: 1, Open: open, Close: closeFn, BackoffMin: time.Second, BackoffMax: time.Millisecond},
	} {
		if _, err := New(cfg); err == nil || !strings.HasPrefix(err.Error(), "pool: ") {
			t.Errorf("%s: New error = %v", name, err)
		}
	}
}

func TestAcquireReleaseStats(t *testing.T) {
	p, f := newTestPool(t, 3, nil)
	if s := p.Stats(); s.Total != 0 || s.Deficit != 3 || f.count() != 0 {
		t.Fatalf("New opened something: %+v", s)
	}
	warm(t, p)
	s := p.Stats()
	if s.Max != 3 || s.Total != 3 || s.Idle != 3 || s.InUse != 0 || s.Deficit != 0 || s.Opened != 3 || s.Acquires != 1 {
		t.Fatalf("after warm-up: %+v", s)
	}

	var rs []*Resource[*fakeConn]
	for range 3 {
		rs = append(rs, mustAcquire(t, p))
	}
	if s := p.Stats(); s.Idle != 0 || s.InUse != 3 || s.Acquires != 4 || s.WaitedAcquires != 1 { // the first Acquire waited for Open
		t.Fatalf("all checked out: %+v", s)
	}

	const n = 4
	results := make(chan handoff[*fakeConn], n)
	for range n {
		go func() {
			r, err := p.Acquire(context.Background())
			results <- handoff[*fakeConn]{r: r, err: err}
		}()
	}
	s = waitStats(t, p, "4 waiters", func(s Stats) bool { return s.Waiting == n })
	if s.Total != 3 || s.Opening != 0 || s.Deficit != 0 || s.InUse != 3 {
		t.Fatalf("with waiters: %+v", s)
	}
	if w := p.Waiting(); w != n {
		t.Fatalf("Waiting() = %d, want %d", w, n)
	}
	if i := p.Idle(); i != s.Idle {
		t.Fatalf("Idle() = %d, want %d", i, s.Idle)
	}
	for _, r := range rs {
		r.Release()
	}
	for range n {
		h := <-results
		if h.err != nil {
			t.Fatal(h.err)
		}
		h.r.Release()
	}
	s = p.Stats()
	if s.Acquires != 4+n || s.WaitedAcquires != 1+n || s.CanceledAcquires != 0 || s.Opened != 3 || len(s.Closed) != 0 {
		t.Fatalf("end: %+v", s)
	}
}

func TestFIFO(t *testing.T) {
	p, _ := newTestPool(t, 1, nil)
	r := mustAcquire(t, p)
	const n = 8
	order := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := p.Acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			r.Release()
		})
		waitStats(t, p, "next waiter", func(s Stats) bool { return s.Waiting == i+1 })
	}
	r.Release()
	wg.Wait()
	close(order)
	want := 0
	for got := range order {
		if got != want {
			t.Fatalf("waiter %d served, want %d", got, want)
		}
		want++
	}
}

func TestCancelWhileWaiting(t *testing.T) {
	p, _ := newTestPool(t, 1, nil)
	r := mustAcquire(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	a := acquireAsync(ctx, p)
	waitStats(t, p, "a waiting", func(s Stats) bool { return s.Waiting == 1 })
	b := acquireAsync(context.Background(), p)
	waitStats(t, p, "b waiting", func(s Stats) bool { return s.Waiting == 2 })

	cancel()
	h := <-a
	if !errors.Is(h.err, context.Canceled) || h.r != nil {
		t.Fatalf("canceled Acquire = %v, %v", h.r, h.err)
	}
	if s := p.Stats(); s.CanceledAcquires != 1 || s.Waiting != 1 {
		t.Fatalf("after cancel: %+v", s)
	}
	r.Release() // must go to b, not to the departed a
	h = <-b
	if h.err != nil || h.r != r {
		t.Fatalf("b got %v, %v", h.r, h.err)
	}
	h.r.Release()

	// Already-canceled context.
	if _, err := p.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with done ctx: %v", err)
	}
	if s := p.Stats(); s.CanceledAcquires != 2 || s.Idle != 1 || s.Acquires != 2 {
		t.Fatalf("end: %+v", s)
	}
}

// TestCancelRacesHandoff lets a Release and a cancel race many times: either
// the waiter gets the resource or it goes back; nothing leaks.
func TestCancelRacesHandoff(t *testing.T) {
	p, _ := newTestPool(t, 1, nil)
	for range 200 {
		r := mustAcquire(t, p)
		ctx, cancel := context.WithCancel(context.Background())
		ch := acquireAsync(ctx, p)
		waitStats(t, p, "waiting", func(s Stats) bool { return s.Waiting == 1 })
		go cancel()
		r.Release()
		if h := <-ch; h.err == nil {
			h.r.Release()
		} else if !errors.Is(h.err, context.Canceled) {
			t.Fatal(h.err)
		}
		cancel()
	}
	s := p.Stats()
	if s.Total != 1 || s.Idle != 1 || s.Waiting != 0 || s.Acquires+s.CanceledAcquires != 400 {
		t.Fatalf("end: %+v", s)
	}
}

func TestCheckFailure(t *testing.T) {
	check := func(_ context.Context, c *fakeConn, _ time.Duration) error {
		if c.unhealthy.Load() {
			return errors.New("dead")
		}
		return nil
	}
	p, _ := newTestPool(t, 2, func(c *Config[*fakeConn]) { c.Check = check })
	warm(t, p)
	a, b := mustAcquire(t, p), mustAcquire(t, p)
	b.Release()
	a.Release() // a is now on top of the idle stack
	a.Value().unhealthy.Store(true)

	r := mustAcquire(t, p) // b, or a replacement for a pushed on top of b meanwhile
	if r == a || r.Value().unhealthy.Load() {
		t.Fatalf("got the unhealthy conn %d", r.Value().id)
	}
	r.Release()
	s := waitStats(t, p, "refill", func(s Stats) bool { return s.Idle == 2 && s.Opening == 0 })
	if s.Closed[ReasonUnhealthy] != 1 || s.Opened != 3 || s.Acquires != 4 {
		t.Fatalf("after unhealthy: %+v", s)
	}

	// All idle ones unhealthy: Acquire waits for a replacement.
	for _, r := range []*Resource[*fakeConn]{mustAcquire(t, p), mustAcquire(t, p)} {
		r.Value().unhealthy.Store(true)
		r.Release()
	}
	r = mustAcquire(t, p)
	if r.Value().unhealthy.Load() {
		t.Fatal("got an unhealthy conn")
	}
	r.Release()
	// The first unhealthy one is always Checked; the second may be bypassed
	// by a replacement pushed on top of it meanwhile.
	if s := p.Stats(); s.Closed[ReasonUnhealthy] < 2 {
		t.Fatalf("end: %+v", s)
	}
}

func TestDestroyRefills(t *testing.T) {
	p, _ := newTestPool(t, 2, nil)
	warm(t, p)
	r := mustAcquire(t, p)
	old := r.Value()
	r.Destroy("broken")
	s := waitStats(t, p, "refill", func(s Stats) bool { return s.Idle == 2 && s.Opening == 0 })
	if s.Closed["broken"] != 1 || s.Opened != 3 || s.Total != 2 {
		t.Fatalf("after Destroy: %+v", s)
	}
	eventually(t, "close", func() bool { return old.closes.Load() == 1 })
}

// TestStart opens resources before any Acquire, and the pool then fills
// itself to Size without a caller; a never-started pool dials nothing.
func TestStart(t *testing.T) {
	idle, f := newTestPool(t, 3, nil)
	p, _ := newTestPool(t, 3, nil)
	p.Start(2)
	s := waitStats(t, p, "filled without an Acquire", func(s Stats) bool { return s.Idle == 3 && s.Opening == 0 })
	if s.Opened != 3 || s.Acquires != 0 {
		t.Fatalf("after Start: %+v", s)
	}
	time.Sleep(10 * time.Millisecond)
	if n := f.count(); n != 0 || idle.Stats().Opened != 0 {
		t.Fatalf("a pool without Start opened %d", n)
	}
}

func TestTotal(t *testing.T) {
	p, f := newTestPool(t, 2, nil)
	if n := p.Total(); n != 0 {
		t.Fatalf("new pool: Total %d", n)
	}
	r, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := p.Total(); n < 1 || n != p.Stats().Total {
		t.Fatalf("one checked out: Total %d, Stats().Total %d", n, p.Stats().Total)
	}
	r.Destroy("test")
	waitStats(t, p, "refilled", func(s Stats) bool { return s.Total == 2 && s.Opening == 0 })
	if n := p.Total(); n != 2 || f.count() != 3 {
		t.Fatalf("after a destroy and the refill: Total %d, %d opened", n, f.count())
	}
}

func TestOpenFailureFailsWaiters(t *testing.T) {
	p, f := newTestPool(t, 2, nil)
	f.gate = make(chan struct{})
	f.failing.Store(true)
	var chs []<-chan handoff[*fakeConn]
	for range 3 {
		chs = append(chs, acquireAsync(context.Background(), p))
	}
	s := waitStats(t, p, "3 waiters", func(s Stats) bool { return s.Waiting == 3 })
	if s.Opening != 2 { // Size bounds concurrent opens
		t.Fatalf("while opening: %+v", s)
	}
	// The Opens fail with no live resources: each fails the callers that
	// were waiting when it began, the third caller by a retry's.
	close(f.gate)
	for _, ch := range chs {
		h := <-ch
		if !errors.Is(h.err, errOpen) || !strings.HasPrefix(h.err.Error(), "pool: open: ") {
			t.Fatalf("waiter got %v", h.err)
		}
	}
	f.failing.Store(false)
	r := mustAcquire(t, p) // recovers on demand
	r.Release()
	s = waitStats(t, p, "warm", func(s Stats) bool { return s.Idle == 2 && s.Opening == 0 })
	if s.OpenFailures < 1 || s.Opened != 2 {
		t.Fatalf("end: %+v", s)
	}
}

// TestOpenFailureSparesLaterCallers fails an Open that began before a
// caller came: that caller is not given the error (it tells of the server
// as it was before), and gets the resource the next Open brings.
func TestOpenFailureSparesLaterCallers(t *testing.T) {
	p, f := newTestPool(t, 1, nil)
	f.entered = make(chan struct{})
	f.gate = make(chan struct{})
	f.failing.Store(true)
	ctx := context.Background()
	first := acquireAsync(ctx, p)
	<-f.entered // the Open has begun
	later := acquireAsync(ctx, p)
	waitStats(t, p, "two waiting", func(s Stats) bool { return s.Waiting == 2 })
	f.gate <- struct{}{}
	if h := <-first; !errors.Is(h.err, errOpen) {
		t.Fatalf("the caller that waited before the Open began: %v", h.err)
	}
	f.failing.Store(false)
	<-f.entered // the retry
	f.gate <- struct{}{}
	h := <-later
	if h.err != nil {
		t.Fatalf("the caller that came after the Open began got %v", h.err)
	}
	h.r.Release()
}

func TestOpenFailureRecoversInBackground(t *testing.T) {
	p, f := newTestPool(t, 2, nil)
	warm(t, p)
	f.failing.Store(true)
	a, b := mustAcquire(t, p), mustAcquire(t, p)
	a.Destroy("broken")
	b.Destroy("broken")
	s := waitStats(t, p, "retries", func(s Stats) bool { return s.OpenFailures >= 3 })
	if s.Total != 0 || s.Closed["broken"] != 2 {
		t.Fatalf("while down: %+v", s)
	}
	if _, err := p.Acquire(context.Background()); !errors.Is(err, errOpen) {
		t.Fatalf("Acquire while down: %v", err)
	}
	f.failing.Store(false)
	s = waitStats(t, p, "recovery", func(s Stats) bool { return s.Idle == 2 && s.Opening == 0 })
	if s.Deficit != 0 || s.Opened != 4 {
		t.Fatalf("recovered: %+v", s)
	}
}

// clock is a fake Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestMaxLifetime(t *testing.T) {
	c := newClock()
	p, _ := newTestPool(t, 2, func(cfg *Config[*fakeConn]) {
		cfg.Now = c.Now
		cfg.MaxLifetime = time.Hour
		cfg.MaxLifetimeJitter = time.Minute
	})
	warm(t, p)
	r := mustAcquire(t, p)
	c.Advance(2 * time.Hour)
	r.Release() // expired at release
	if s := p.Stats(); s.Closed[ReasonLifetime] != 1 {
		t.Fatalf("after release: %+v", s)
	}
	// The other expired idle one is skipped at acquire: conns 0 and 1 are
	// the expired ones.
	r = mustAcquire(t, p)
	if id := r.Value().id; id < 2 {
		t.Fatalf("got expired conn %d", id)
	}
	r.Release()
	// A replacement may have been pushed above the other expired one, so
	// Acquire need not have met it; the sweep does.
	p.sweep()
	waitStats(t, p, "replaced", func(s Stats) bool { return s.Idle == 2 && s.Opening == 0 && s.Closed[ReasonLifetime] == 2 })

	c.Advance(2 * time.Hour)
	p.sweep()
	s := waitStats(t, p, "sweep replaced", func(s Stats) bool { return s.Idle == 2 && s.Opening == 0 })
	if s.Closed[ReasonLifetime] != 4 || s.Opened != 6 {
		t.Fatalf("after sweep: %+v", s)
	}
}

func TestMaxIdleTime(t *testing.T) {
	c := newClock()
	var checkedIdle time.Duration // written by Check in the Acquire caller's goroutine
	p, _ := newTestPool(t, 2, func(cfg *Config[*fakeConn]) {
		cfg.Now = c.Now
		cfg.MaxIdleTime = time.Hour
		cfg.Check = func(_ context.Context, _ *fakeConn, idle time.Duration) error {
			checkedIdle = idle
			return nil
		}
	})
	warm(t, p)
	c.Advance(30 * time.Minute)
	r := mustAcquire(t, p)
	if checkedIdle != 30*time.Minute {
		t.Fatalf("Check got idle %v, want 30m", checkedIdle)
	}
	r.Release()
	c.Advance(45 * time.Minute) // one idle 75m, the other 45m
	p.sweep()
	s := waitStats(t, p, "replaced", func(s Stats) bool { return s.Idle == 2 && s.Opening == 0 })
	if s.Closed[ReasonIdleTime] != 1 || s.Opened != 3 {
		t.Fatalf("after sweep: %+v", s)
	}
}

func TestKeepaliveSweep(t *testing.T) {
	c := newClock()
	var calls atomic.Int32
	p, _ := newTestPool(t, 3, func(cfg *Config[*fakeConn]) {
		cfg.Now = c.Now
		cfg.KeepaliveInterval = time.Hour // the ticker never fires; sweep by hand
		cfg.Keepalive = func(_ context.Context, v *fakeConn) error {
			calls.Add(1)
			if v.unhealthy.Load() {
				return errors.New("gone")
			}
			return nil
		}
	})
	warm(t, p)
	inUse := mustAcquire(t, p) // not swept while checked out
	r := mustAcquire(t, p)
	r.Value().unhealthy.Store(true)
	r.Release()
	c.Advance(2 * time.Hour)
	p.sweep()
	if n := calls.Load(); n != 2 {
		t.Fatalf("Keepalive called %d times, want 2", n)
	}
	inUse.Release()
	s := waitStats(t, p, "replaced", func(s Stats) bool { return s.Idle == 3 && s.Opening == 0 })
	if s.Closed[ReasonKeepalive] != 1 || s.Opened != 4 {
		t.Fatalf("after sweep: %+v", s)
	}
	// Kept-alive ones count as fresh: a second sweep right away does nothing.
	p.sweep()
	if n := calls.Load(); n != 2 {
		t.Fatalf("Keepalive called %d times, want 2", n)
	}
}

func TestKeepaliveTicker(t *testing.T) {
	called := make(chan *fakeConn, 16)
	p, _ := newTestPool(t, 1, func(cfg *Config[*fakeConn]) {
		cfg.KeepaliveInterval = time.Millisecond
		cfg.Keepalive = func(_ context.Context, v *fakeConn) error {
			select {
			case called <- v:
			default:
			}
			return nil
		}
	})
	warm(t, p)
	<-called
	<-called
}

func TestCloseWithCheckedOut(t *testing.T) {
	p, f := newTestPool(t, 2, nil)
	warm(t, p)
	r := mustAcquire(t, p)
	p.Close()
	p.Close() // idempotent
	if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Acquire after Close: %v", err)
	}
	if s := p.Stats(); s.Closed[ReasonPoolClosed] != 1 || s.Total != 1 || s.InUse != 1 {
		t.Fatalf("after Close: %+v", s)
	}
	if r.Value().closes.Load() != 0 {
		t.Fatal("checked-out conn closed under its holder")
	}
	r.Release()
	if r.Value().closes.Load() != 1 {
		t.Fatal("conn not closed on release after Close")
	}
	if s := p.Stats(); s.Closed[ReasonPoolClosed] != 2 || s.Total != 0 {
		t.Fatalf("after release: %+v", s)
	}
	f.checkAllClosed()
}

func TestCloseWakesWaiters(t *testing.T) {
	p, _ := newTestPool(t, 1, nil)
	r := mustAcquire(t, p)
	a, b := acquireAsync(context.Background(), p), acquireAsync(context.Background(), p)
	waitStats(t, p, "waiters", func(s Stats) bool { return s.Waiting == 2 })
	p.Close()
	for _, ch := range []<-chan handoff[*fakeConn]{a, b} {
		if h := <-ch; !errors.Is(h.err, ErrClosed) {
			t.Fatalf("waiter got %v", h.err)
		}
	}
	r.Destroy("whatever") // after Close: closed synchronously
	if r.Value().closes.Load() != 1 {
		t.Fatal("not closed")
	}
}

func TestCloseCancelsOpen(t *testing.T) {
	p, f := newTestPool(t, 1, nil)
	f.gate = make(chan struct{}) // Open blocks until its ctx ends
	ch := acquireAsync(context.Background(), p)
	waitStats(t, p, "opening", func(s Stats) bool { return s.Opening == 1 && s.Waiting == 1 })
	p.Close() // must not hang on the Open
	if h := <-ch; h.err != ErrClosed {
		t.Fatalf("waiter got %v", h.err)
	}
}

func TestDoubleReleasePanics(t *testing.T) {
	p, _ := newTestPool(t, 1, nil)
	for _, tc := range []struct {
		second func(*Resource[*fakeConn])
		want   string
	}{
		{func(r *Resource[*fakeConn]) { r.Release() }, "pool: Release called on a resource that is not checked out"},
		{func(r *Resource[*fakeConn]) { r.Destroy("x") }, "pool: Destroy called on a resource that is not checked out"},
	} {
		r := mustAcquire(t, p)
		r.Release()
		func() {
			defer func() {
				if got := recover(); got != tc.want {
					t.Errorf("panic = %v, want %q", got, tc.want)
				}
			}()
			tc.second(r)
		}()
	}
	r := mustAcquire(t, p)
	r.Destroy("x")
	defer func() {
		if got := recover(); got != msgDoubleRelease {
			t.Errorf("Release after Destroy: panic = %v", got)
		}
	}()
	r.Release()
}

func TestStress(t *testing.T) {
	const size, workers, ops = 6, 32, 400
	var checkFails atomic.Int32
	p, f := newTestPool(t, size, func(cfg *Config[*fakeConn]) {
		cfg.Check = func(context.Context, *fakeConn, time.Duration) error {
			if rand.N(50) == 0 {
				checkFails.Add(1)
				return errors.New("random")
			}
			return nil
		}
		cfg.MaxLifetime = 5 * time.Millisecond
		cfg.MaxLifetimeJitter = time.Millisecond
		cfg.KeepaliveInterval = time.Millisecond
		cfg.Keepalive = func(context.Context, *fakeConn) error {
			if rand.N(20) == 0 {
				return errors.New("random")
			}
			return nil
		}
	})
	checkInvariants := func(s Stats) {
		var closed uint64
		for _, n := range s.Closed {
			closed += n
		}
		if s.Total > s.Max || s.Total+s.Opening > s.Max || s.Idle+s.InUse != s.Total ||
			s.Idle < 0 || s.InUse < 0 || s.Deficit < 0 || s.Opened-closed != uint64(s.Total) {
			t.Errorf("invariant broken: %+v", s)
		}
	}
	stop := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				checkInvariants(p.Stats())
				if rand.N(50) == 0 {
					f.failing.Store(!f.failing.Load())
				}
				time.Sleep(50 * time.Microsecond)
			}
		}
	})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range ops {
				ctx, cancel := context.WithCancel(context.Background())
				if rand.N(4) == 0 {
					time.AfterFunc(time.Duration(rand.N(100))*time.Microsecond, cancel)
				}
				r, err := p.Acquire(ctx)
				if err != nil {
					cancel()
					if !errors.Is(err, context.Canceled) && !errors.Is(err, errOpen) {
						t.Errorf("Acquire: %v", err)
						return
					}
					continue
				}
				v := r.Value()
				if v.holders.Add(1) != 1 {
					t.Errorf("conn %d handed to two holders", v.id)
				}
				if v.closes.Load() != 0 {
					t.Errorf("conn %d handed out after Close", v.id)
				}
				if rand.N(8) == 0 {
					time.Sleep(time.Duration(rand.N(50)) * time.Microsecond)
				}
				v.holders.Add(-1)
				if rand.N(10) == 0 {
					r.Destroy("stress")
				} else {
					r.Release()
				}
				cancel()
			}
		})
	}
	wg.Wait()
	close(stop)
	watcher.Wait()
	f.failing.Store(false)
	s := p.Stats()
	checkInvariants(s)
	if s.InUse != 0 || s.Waiting != 0 {
		t.Fatalf("end: %+v", s)
	}
	t.Logf("stats: %+v (check failures %d)", s, checkFails.Load())
}

func BenchmarkAcquireRelease(b *testing.B) {
	p, _ := newTestPool(b, 1, nil)
	warm(b, p)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, err := p.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		r.Release()
	}
}

func BenchmarkAcquireReleaseParallel(b *testing.B) {
	p, _ := newTestPool(b, 4, nil)
	warm(b, p)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := p.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			r.Release()
		}
	})
}

// BenchmarkAcquireReleaseWaiting has four times as many goroutines as
// resources, each holding its resource across a yield, so that most
// Acquires wait in line and are handed a resource by a Release: the path
// of a pool smaller than its callers' concurrency.
func BenchmarkAcquireReleaseWaiting(b *testing.B) {
	p, _ := newTestPool(b, 2, nil)
	warm(b, p)
	ctx := context.Background()
	before := p.Stats().WaitedAcquires
	b.ReportAllocs()
	b.SetParallelism(max(1, 4*p.cfg.Size/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := p.Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			runtime.Gosched()
			r.Release()
		}
	})
	b.ReportMetric(float64(p.Stats().WaitedAcquires-before)/float64(b.N), "waits/op")
}

// TestIdlePrefersLastReleased checks that Acquire hands out the resource a
// holder released last, ahead of ones the pool opened or kept alive since:
// code written for database/sql relies on its next statement finding the
// session state (a temporary table) of the one before when nothing else
// runs.
func TestIdlePrefersLastReleased(t *testing.T) {
	t.Run("over newly opened", func(t *testing.T) {
		p, f := newTestPool(t, 3, nil)
		f.gate = make(chan struct{})
		got := acquireAsync(context.Background(), p)
		f.gate <- struct{}{} // the first Open
		h := <-got
		if h.err != nil {
			t.Fatal(h.err)
		}
		first := h.r.Value()
		h.r.Release()
		f.gate <- struct{}{} // the pool fills itself up after first use
		f.gate <- struct{}{}
		waitStats(t, p, "filled", func(s Stats) bool { return s.Idle == 3 && s.Opening == 0 })
		r := mustAcquire(t, p)
		defer r.Release()
		if r.Value() != first {
			t.Fatalf("Acquire took conn %d, opened after conn %d was released", r.Value().id, first.id)
		}
	})
	t.Run("over kept alive", func(t *testing.T) {
		c := newClock()
		p, _ := newTestPool(t, 2, func(cfg *Config[*fakeConn]) {
			cfg.Now = c.Now
			cfg.KeepaliveInterval = time.Hour // the ticker never fires; sweep by hand
			cfg.Keepalive = func(context.Context, *fakeConn) error { return nil }
		})
		warm(t, p)
		old, last := mustAcquire(t, p), mustAcquire(t, p)
		old.Release()
		c.Advance(2 * time.Hour)
		last.Release()
		p.sweep() // keeps old alive, not last
		r := mustAcquire(t, p)
		defer r.Release()
		if r.Value() != last.Value() {
			t.Fatalf("Acquire took conn %d, kept alive, over conn %d, released last", r.Value().id, last.Value().id)
		}
	})
}
