package fanout

import (
	"context"
	"sync"
	"sync/atomic"
)

// deque is a growable ring of items.
type deque struct {
	buf     []*item
	head, n int
}

func (d *deque) len() int { return d.n }

func (d *deque) front() *item {
	if d.n == 0 {
		return nil
	}
	return d.buf[d.head]
}

func (d *deque) pushBack(it *item) {
	d.grow()
	d.buf[(d.head+d.n)%len(d.buf)] = it
	d.n++
}

func (d *deque) pushFront(it *item) {
	d.grow()
	d.head = (d.head - 1 + len(d.buf)) % len(d.buf)
	d.buf[d.head] = it
	d.n++
}

func (d *deque) popFront() *item {
	if d.n == 0 {
		return nil
	}
	it := d.buf[d.head]
	d.buf[d.head] = nil
	d.head = (d.head + 1) % len(d.buf)
	d.n--
	if len(d.buf) > 1024 && d.n < len(d.buf)/4 {
		d.resize(len(d.buf) / 2)
	}
	return it
}

func (d *deque) grow() {
	if d.n < len(d.buf) {
		return
	}
	d.resize(max(16, 2*len(d.buf)))
}

func (d *deque) resize(size int) {
	buf := make([]*item, size)
	for i := range d.n {
		buf[i] = d.buf[(d.head+i)%len(d.buf)]
	}
	d.buf, d.head = buf, 0
}

// queue is the bounded buffer between Handle and the sender. It holds the
// events waiting to be published; the bounds count them together with the
// events in flight, which stay charged until acknowledged or dropped.
//
// Once an event is refused for lack of room the queue is saturated (the
// relay reports not ready, and Handle sheds events before building them)
// until it has drained to half of its bounds.
type queue struct {
	mu        sync.Mutex
	waiting   deque
	bytes     int64 // held: waiting + in flight
	count     int
	maxBytes  int64
	maxCount  int
	saturated bool
	shedding  atomic.Bool   // mirrors saturated, read without mu by Handle
	overflows atomic.Uint64 // times it became saturated
	closed    bool
	signal    chan struct{} // capacity 1: "something was pushed"
	satChange notifier      // saturated flipped
	room      notifier      // back to at most half full, while roomWaiters > 0
	// roomWaiters counts waitRoom calls blocked on room.
	roomWaiters int
	fits        notifier // below seven eighths, while fitWaiters > 0
	fitWaiters  int      // waitFits calls blocked on fits
}

type pushResult uint8

const (
	pushed pushResult = iota
	pushFull
	pushTooLarge
	pushClosed
)

func newQueue(maxBytes int64, maxCount int) *queue {
	return &queue{maxBytes: maxBytes, maxCount: maxCount, signal: make(chan struct{}, 1)}
}

func (q *queue) push(it *item) pushResult {
	q.mu.Lock()
	res := q.pushLocked(it)
	q.mu.Unlock()
	if res == pushed {
		select {
		case q.signal <- struct{}{}:
		default:
		}
	}
	return res
}

func (q *queue) pushLocked(it *item) pushResult {
	switch {
	case q.closed:
		return pushClosed
	case it.size > q.maxBytes:
		return pushTooLarge
	case q.bytes+it.size > q.maxBytes || q.count >= q.maxCount:
		if !q.saturated {
			q.saturated = true
			q.shedding.Store(true)
			q.overflows.Add(1)
			q.satChange.notify()
		}
		return pushFull
	}
	q.waiting.pushBack(it)
	q.bytes += it.size
	q.count++
	return pushed
}

// next takes the oldest waiting item (it stays charged), or nil.
func (q *queue) next() *item {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waiting.popFront()
}

// requeue puts items back at the front, keeping their order.
func (q *queue) requeue(items ...*item) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := len(items) - 1; i >= 0; i-- {
		q.waiting.pushFront(items[i])
	}
}

// release uncharges an item that was published or dropped.
func (q *queue) release(it *item) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.bytes -= it.size
	q.count--
	if q.saturated && q.halfLocked() {
		q.saturated = false
		q.shedding.Store(false)
		q.satChange.notify()
	}
	if q.roomWaiters > 0 && q.halfLocked() {
		q.room.notify()
	}
	if q.fitWaiters > 0 && q.fitsLocked() {
		q.fits.notify()
	}
}

// fitsLocked reports whether the queue holds at most seven eighths of its
// bounds: room for a live event that waited, without waking every waiter
// at each event the sender takes.
func (q *queue) fitsLocked() bool {
	return q.bytes <= q.maxBytes-q.maxBytes/8 && q.count <= q.maxCount-q.maxCount/8
}

// waitFits blocks until the queue holds at most seven eighths of its
// bounds, saturated or not: a held-back live event goes in as soon as the
// sender made some room. It returns ErrClosed once the queue is closed, or
// ctx's error.
func (q *queue) waitFits(ctx context.Context) error {
	return q.waitFor(ctx, q.fitsLocked, &q.fits, &q.fitWaiters)
}

// waitFor blocks until ready (called with mu held) holds, counting itself
// in *waiters while it waits for n, which release notifies. It returns
// ErrClosed once the queue is closed, or ctx's error.
func (q *queue) waitFor(ctx context.Context, ready func() bool, n *notifier, waiters *int) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return ErrClosed
		}
		if ready() {
			return nil
		}
		changed := n.changed()
		*waiters++
		q.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
		}
		q.mu.Lock()
		*waiters--
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// halfLocked reports whether the queue holds at most half its bounds.
func (q *queue) halfLocked() bool {
	return q.bytes <= q.maxBytes/2 && q.count <= q.maxCount/2
}

// waitRoom blocks until the queue holds at most half its bounds and is not
// saturated, so that a batch pushed now leaves room for live events. It
// returns ErrClosed once the queue is closed, or ctx's error.
func (q *queue) waitRoom(ctx context.Context) error {
	return q.waitFor(ctx, func() bool { return !q.saturated && q.halfLocked() }, &q.room, &q.roomWaiters)
}

func (q *queue) waitingLen() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waiting.len()
}

func (q *queue) held() (bytes int64, count int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes, q.count
}

func (q *queue) isSaturated() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.saturated
}

// close refuses further pushes.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.room.notify()
	q.fits.notify()
}

// drain removes and uncharges every waiting item.
func (q *queue) drain() []*item {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*item
	for it := q.waiting.popFront(); it != nil; it = q.waiting.popFront() {
		q.bytes -= it.size
		q.count--
		out = append(out, it)
	}
	q.room.notify()
	return out
}
