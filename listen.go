package pgpurepy

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgpurepy/pgpurepy/internal/pool"
)

// LISTEN/NOTIFY. A Listener holds one session of its own, dialled as the
// pool dials (shared.open: the Framer, the cancel handler, the failover
// generation) but never part of the pool, so that a listener neither takes
// a connection from the statements nor loses its LISTEN to a connection
// that goes back to the pool. The server delivers notifications only to
// the session that ran LISTEN, and pgconn hands them to the OnNotification
// of dial.go, which gives them to the session's notify: the Listener's
// receive on its own session, nothing on the pool's.
//
// The Listener waits with pgconn's WaitForNotification without a context:
// with one, pgconn's context watcher would run the cancel handler, which
// sends the server a cancel request for a statement that does not exist
// and makes up an answer the session would have to recover from. It bounds
// the wait with the socket's read deadline instead, which pgconn treats as
// a timeout that leaves the connection usable (the Framer holds back any
// message that arrived in part): every listenCheck, to look after the
// connection, and at once when its context ends.

// Notification is one notification sent with NOTIFY or pg_notify.
type Notification struct {
	// Channel is the channel it was sent on, as the server spells it.
	Channel string
	// Payload is its payload, "" when NOTIFY gave none.
	Payload string
	// PID is the process id of the server backend that sent it.
	PID uint32
}

// Listener receives the notifications of the channels given to
// Pool.Listen, on a server connection of its own: read them with
// Notifications, and Close it when done. It reconnects by itself when the
// connection is lost or the writable server changed, and then says that
// notifications may have been missed (ErrNotificationsMissed). To notice
// a connection that died without a word, or a server fenced read-only, it
// makes one round trip when the connection has made none for
// ping_after_idle (or keepalive_interval, if shorter).
//
// Close may be called from any goroutine; Notifications is ranged over by
// one goroutine, once.
type Listener struct {
	sh *shared
	// listen is the LISTEN statement of every channel, each quoted.
	listen string
	// parent is the context given to Listen; ctx ends with it, with Close
	// or the end of the range (cause errListenerClosed), and with the pool
	// (cause errListenPoolClosed).
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	// stopLife and stopWake undo the AfterFuncs that end ctx with the
	// pool and act on ctx's end (interrupt).
	stopLife, stopWake func() bool

	// The fields up to mu are used by the goroutine that owns the
	// listener, Listen's and then the range's, and by receive, which
	// pgconn calls on that goroutine.

	// queue holds what the range has still to yield, from head on, in the
	// order it arrived: notifications and the missed markers.
	queue []listenItem
	head  int
	// lastPing is when the session last made a round trip.
	lastPing time.Time

	mu sync.Mutex // protects the fields below; a leaf, held for no I/O
	// s is the session while there is one: the owner sets it, and
	// interrupt, on another goroutine, wakes or closes it.
	s     *session
	state listenerState
}

// listenItem is one element for the range: a notification, or the error
// that says notifications may have been missed.
type listenItem struct {
	n   Notification
	err error
}

type listenerState int

const (
	listenerIdle    listenerState = iota // Listen has returned; no range yet
	listenerRanging                      // a range owns the session
	listenerDone                         // closed; nothing is held
)

const (
	// listenCheck is how often a waiting listener looks after its
	// connection (see check), and so the longest it waits unawares on a
	// server that is no longer the writable one.
	listenCheck = time.Second
	// listenBackoffMin and listenBackoffMax bound the delay between
	// reconnect attempts: full jitter, doubling from the min. The max is
	// lower than the pool's (5s): while a listener is away, notifications
	// are lost, not delayed.
	listenBackoffMin = 50 * time.Millisecond
	listenBackoffMax = 2 * time.Second
)

var (
	errListenerClosed   = errors.New("pgpurepy: listen: listener closed")
	errListenerBusy     = errors.New("pgpurepy: listen: notifications are already being read")
	errListenPoolClosed = fmt.Errorf("pgpurepy: listen: %w", pool.ErrClosed)
)

// Listen opens a server connection of its own, outside the pool, runs
// LISTEN for each channel on it, and returns the Listener that reads their
// notifications. Channel names are taken as they are, quoted (never
// interpolated as SQL): Listen(ctx, "Jobs") receives pg_notify('Jobs', ...)
// and NOTIFY "Jobs", not NOTIFY Jobs, which the server folds to jobs.
//
// Once Listen returns, LISTEN is in effect: a notification committed after
// that is received, so state read after Listen and then updated from the
// notifications misses nothing.
//
// ctx bounds the connect and the LISTEN, and then the Listener's whole
// life: when ctx ends, the connection is closed and a range in progress
// ends with ctx's error. The Listener also ends when the pool is closed.
// An error (no channel, an empty name, a failed connect, a LISTEN the
// server refused, ctx's end) leaves nothing open.
//
// LISTEN run as a statement (through database/sql or Execute) applies to
// whichever pool connection ran it, and the notifications that connection
// receives are dropped (a Config's ConnConfig.OnNotification still sees
// them): use Listen.
func (x *Pool) Listen(ctx context.Context, channels ...string) (*Listener, error) {
	stmt, err := listenStatement(channels)
	if err != nil {
		return nil, err
	}
	sh := x.c.sh
	if sh.life.Err() != nil {
		return nil, errListenPoolClosed
	}
	l := &Listener{sh: sh, listen: stmt, parent: ctx}
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	l.stopLife = context.AfterFunc(sh.life, func() { l.cancel(errListenPoolClosed) })
	s, err := sh.open(l.ctx)
	if err == nil {
		err = l.attach(l.ctx, s)
	}
	if err != nil {
		l.stopLife()
		if errors.Is(context.Cause(l.ctx), errListenPoolClosed) {
			err = errListenPoolClosed
		}
		l.cancel(errListenerClosed)
		return nil, err
	}
	sh.stats.listeners.Add(1)
	l.stopWake = context.AfterFunc(l.ctx, l.interrupt)
	return l, nil
}

// listenStatement returns the LISTEN statements for channels, each name
// quoted as an identifier. The server checks the rest (it truncates a name
// longer than 63 bytes, as it does NOTIFY's).
func listenStatement(channels []string) (string, error) {
	if len(channels) == 0 {
		return "", errors.New("pgpurepy: listen: no channel given")
	}
	var b strings.Builder
	for _, ch := range channels {
		if ch == "" || strings.IndexByte(ch, 0) >= 0 {
			return "", fmt.Errorf("pgpurepy: listen: %q is not a channel name", ch)
		}
		b.WriteString(`LISTEN "`)
		b.WriteString(strings.ReplaceAll(ch, `"`, `""`))
		b.WriteString(`";`)
	}
	return b.String(), nil
}

// attach makes s the listener's session: it routes s's notifications to the
// queue and runs LISTEN, bounded by ctx. It closes s when it fails.
func (l *Listener) attach(ctx context.Context, s *session) error {
	s.notify = l.receive
	if _, err := s.pg.Exec(ctx, l.listen).ReadAll(); err != nil {
		s.close()
		if ctx.Err() != nil {
			return fmt.Errorf("pgpurepy: listen: %w", ctx.Err())
		}
		return fmt.Errorf("pgpurepy: listen: %w", err)
	}
	if s.pooled {
		l.sh.log.warn("listener reaches the server through a pooler: it receives notifications only in session pooling")
	}
	l.lastPing = time.Now()
	l.mu.Lock()
	l.s = s
	l.mu.Unlock()
	return nil
}

// receive queues a notification; pgconn calls it on the owner's goroutine,
// during whichever of its calls read the notification.
func (l *Listener) receive(n *pgconn.Notification) {
	l.queue = append(l.queue, listenItem{n: Notification{Channel: n.Channel, Payload: n.Payload, PID: n.PID}})
}

// Notifications returns the notifications, in the order the server sent
// them, as they arrive:
//
//	for n, err := range l.Notifications() {
//		if errors.Is(err, pgpurepy.ErrNotificationsMissed) {
//			reload() // LISTEN is in effect again; what came between is lost
//			continue
//		}
//		if err != nil {
//			return err // ctx ended, or the pool was closed
//		}
//		handle(n)
//	}
//
// Each step waits, without a goroutine or a buffer of its own, until a
// notification arrives: while the loop body runs, notifications wait on the
// connection and in the server's queue.
//
// When the connection is lost (the server restarted, the backend was
// terminated) or the writable server changed (a failover, for a
// target_session_attrs=read-write DSN), the Listener reconnects with
// backoff, runs LISTEN again and then yields an error wrapping
// ErrNotificationsMissed and the cause; iteration goes on after it, and
// every notification committed after it is received. Meanwhile the step
// waits, bounded by the Listener's context; failed connects are logged.
//
// The sequence ends with an error wrapping ctx's error when the context
// given to Listen ends, or with one when the pool is closed; it ends
// without one after Close. Ending it, by break too, closes the Listener.
// Ranging over a closed Listener yields one error; ranging from two
// goroutines at once yields one to the second.
func (l *Listener) Notifications() iter.Seq2[Notification, error] {
	return func(yield func(Notification, error) bool) {
		if err := l.begin(); err != nil {
			yield(Notification{}, err)
			return
		}
		defer l.finish()
		for {
			it, ok := l.next()
			if !ok {
				if err := l.endErr(); err != nil {
					yield(Notification{}, err)
				}
				return
			}
			if !yield(it.n, it.err) {
				return
			}
		}
	}
}

// Close closes the Listener's connection, which ends its LISTENs on the
// server. A range in progress, on another goroutine or in its own loop
// body, ends at its next step, without an error, and closes the connection
// itself. Close never fails, and may be called more than once.
func (l *Listener) Close() error {
	l.stopWake()
	l.cancel(errListenerClosed)
	l.interrupt()
	return nil
}

// begin hands the listener to a range.
func (l *Listener) begin() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch l.state {
	case listenerRanging:
		return errListenerBusy
	case listenerDone:
		if err := l.endErr(); err != nil {
			return err
		}
		return errListenerClosed
	}
	l.state = listenerRanging
	return nil
}

// finish ends a range: the listener is closed.
func (l *Listener) finish() {
	l.stopWake()
	l.mu.Lock()
	s := l.s
	l.s, l.state = nil, listenerDone
	l.mu.Unlock()
	if s != nil {
		s.close()
	}
	l.end()
}

// interrupt runs when the listener's context ends (and from Close): it
// closes the session of a listener no range owns, and wakes a range's wait.
func (l *Listener) interrupt() {
	l.mu.Lock()
	s, state := l.s, l.state
	if state == listenerIdle {
		l.s, l.state = nil, listenerDone
	}
	l.mu.Unlock()
	switch {
	case state == listenerIdle:
		if s != nil {
			s.close()
		}
		l.end()
	case state == listenerRanging && s != nil:
		// Safe from any goroutine; the range sees ctx's end once awake.
		_ = s.pg.Conn().SetReadDeadline(time.Now())
	}
}

// end releases what the listener holds besides its session; it runs once,
// when the state turns listenerDone.
func (l *Listener) end() {
	l.stopLife()
	l.cancel(errListenerClosed)
	l.sh.stats.listeners.Add(-1)
}

// endErr is the error that ends the range, or nil when it ends because it
// was closed.
func (l *Listener) endErr() error {
	cause := context.Cause(l.ctx)
	switch {
	case cause == nil || errors.Is(cause, errListenerClosed):
		return nil
	case errors.Is(cause, errListenPoolClosed):
		return errListenPoolClosed
	case l.parent.Err() != nil:
		return fmt.Errorf("pgpurepy: listen: %w", l.parent.Err())
	}
	return fmt.Errorf("pgpurepy: listen: %w", cause)
}

// next returns the next element for the range, waiting and reconnecting
// as needed, or false when the listener's context has ended.
func (l *Listener) next() (listenItem, bool) {
	for {
		if l.ctx.Err() != nil {
			return listenItem{}, false
		}
		if l.head < len(l.queue) {
			it := l.queue[l.head]
			l.queue[l.head] = listenItem{}
			if l.head++; l.head == len(l.queue) {
				l.queue, l.head = l.queue[:0], 0
			}
			return it, true
		}
		if lost := l.wait(); lost != nil && !l.reconnect(lost) {
			return listenItem{}, false
		}
	}
}

// wait waits until a notification arrives, the next check falls due, or
// ctx ends. It returns why the session cannot go on, if it cannot.
func (l *Listener) wait() error {
	s := l.s
	nc := s.pg.Conn()
	_ = nc.SetReadDeadline(time.Now().Add(l.checkEvery()))
	// After the deadline is set: an interrupt that came before it is seen
	// here, one that comes after it moves the deadline to now.
	if l.ctx.Err() != nil {
		return nil
	}
	err := s.pg.WaitForNotification(context.Background())
	_ = nc.SetReadDeadline(time.Time{})
	switch {
	case err == nil:
		return nil
	case s.pg.IsClosed() || !pgconn.Timeout(err):
		return err
	case l.ctx.Err() != nil:
		return nil
	}
	return l.check()
}

// check looks after the connection when the wait timed out: a ping when
// none was made for pingEvery, which finds a connection that died without
// a word and has the server report parameters that changed (a fence), and
// the pool's failover check, which needs no round trip otherwise.
func (l *Listener) check() error {
	s, cfg := l.s, l.sh.cfg
	if every := l.pingEvery(); every > 0 && time.Since(l.lastPing) >= every {
		ctx, cancel := context.WithTimeout(l.ctx, cfg.CancelGrace)
		err := s.pg.Ping(ctx)
		cancel()
		if err != nil {
			return err
		}
		l.lastPing = time.Now()
	}
	return l.sh.failover.checkWritable(l.ctx, s.pg, s.generation, cfg.CancelGrace)
}

// pingEvery is how long the listener's connection may go without a round
// trip: ping_after_idle, or keepalive_interval when that is shorter; 0
// when both are off.
func (l *Listener) pingEvery() time.Duration {
	a, b := l.sh.cfg.PingAfterIdle, l.sh.cfg.KeepaliveInterval
	if a == 0 || b > 0 && b < a {
		return b
	}
	return a
}

// checkEvery is how long one wait lasts at most.
func (l *Listener) checkEvery() time.Duration {
	if p := l.pingEvery(); p > 0 && p < listenCheck {
		return p
	}
	return listenCheck
}

// reconnect replaces the lost session: it dials until a session runs
// LISTEN, with backoff, and queues the missed marker in front of what the
// new session receives. It returns false when the listener's context ended
// first.
func (l *Listener) reconnect(lost error) bool {
	l.mu.Lock()
	old := l.s
	l.s = nil
	l.mu.Unlock()
	if old != nil {
		old.close()
	}
	if l.ctx.Err() != nil {
		return false
	}
	l.sh.log.warn("listener lost its connection: reconnecting", "err", lost)
	missed := fmt.Errorf("%w: %w", ErrNotificationsMissed, lost)
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !l.sleep(listenBackoff(attempt)) {
			return false
		}
		s, err := l.sh.open(l.ctx) // logs its failures
		if err != nil {
			continue
		}
		// The marker goes first: the new session's LISTEN may already
		// bring notifications.
		mark := len(l.queue)
		l.queue = append(l.queue, listenItem{err: missed})
		ctx, cancel := context.WithTimeout(l.ctx, l.sh.cfg.CancelGrace)
		err = l.attach(ctx, s)
		cancel()
		if err != nil {
			l.queue = l.queue[:mark]
			l.sh.log.warn("listener: LISTEN failed after a reconnect", "err", err)
			continue
		}
		l.sh.log.debug("listener reconnected", "pid", s.pg.PID())
		return true
	}
}

// sleep waits for d or until the listener's context ends, and reports
// whether it may go on.
func (l *Listener) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.ctx.Done():
		return false
	}
}

// listenBackoff is the delay before reconnect attempt number attempt (>= 1).
func listenBackoff(attempt int) time.Duration {
	d := listenBackoffMax
	if shift := attempt - 1; shift < 30 {
		if b := listenBackoffMin << shift; b > 0 && b < d {
			d = b
		}
	}
	return rand.N(d)
}
