package pool

// Lock order: see the package comment in pool.go (Pool.mu is the only lock).

import "time"

// handoff is what a waiter receives: a checked-out resource or an error.
type handoff[T any] struct {
	r   *Resource[T]
	err error
}

// waiter is one Acquire call waiting in line. prev, next and queued are
// protected by Pool.mu; ch is sent to at most once per wait, under Pool.mu,
// and is empty again when the wait ends, so that Pool.spare can reuse it.
type waiter[T any] struct {
	ch         chan handoff[T]
	start      time.Time
	prev, next *waiter[T]
	queued     bool
}

func (p *Pool[T]) pushWaiterLocked(w *waiter[T]) {
	w.queued = true
	w.prev = p.tail
	if p.tail == nil {
		p.head = w
	} else {
		p.tail.next = w
	}
	p.tail = w
	p.nWaiting++
}

func (p *Pool[T]) removeWaiterLocked(w *waiter[T]) {
	if w.prev == nil {
		p.head = w.next
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		p.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
	p.nWaiting--
}

// popWaiterLocked removes and returns the first waiter, or nil.
func (p *Pool[T]) popWaiterLocked() *waiter[T] {
	w := p.head
	if w != nil {
		p.removeWaiterLocked(w)
	}
	return w
}

// failWaitersLocked sends err to every waiter that has waited since before
// since. The line is in the order of arrival, so they are at its head.
func (p *Pool[T]) failWaitersLocked(err error, now, since time.Time) {
	for p.head != nil && !p.head.start.After(since) {
		w := p.popWaiterLocked()
		p.waitDuration += now.Sub(w.start)
		w.ch <- handoff[T]{err: err}
	}
}
