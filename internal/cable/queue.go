package cable

import "sync"

// deliveryQueue is a bounded FIFO of broadcasts between a connection's
// reader and its delivery goroutine. Unlike a buffered channel it takes
// memory only while broadcasts wait: 500 idle connections cost nothing,
// even after a burst (such as the presence.update Chatwoot sends for each
// subscribe) grew their arrays.
type deliveryQueue[M any] struct {
	max  int
	wake chan struct{} // capacity 1: something was pushed, or the queue closed

	mu     sync.Mutex
	items  []Delivery[M]
	spare  []Delivery[M]
	closed bool
}

func newDeliveryQueue[M any](max int) *deliveryQueue[M] {
	return &deliveryQueue[M]{max: max, wake: make(chan struct{}, 1)}
}

// push adds d unless max broadcasts already wait.
func (q *deliveryQueue[M]) push(d Delivery[M]) bool {
	q.mu.Lock()
	if len(q.items) >= q.max || q.closed {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, d)
	q.mu.Unlock()
	q.signal()
	return true
}

func (q *deliveryQueue[M]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close makes drain return once the queue is empty.
func (q *deliveryQueue[M]) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// drain calls fn for every broadcast in order until the queue is closed and
// empty.
func (q *deliveryQueue[M]) drain(fn func(Delivery[M])) {
	for {
		batch, ok := q.take()
		if !ok {
			return
		}
		for _, d := range batch {
			fn(d)
		}
		q.recycle(batch)
	}
}

// take waits for broadcasts and takes all of them.
func (q *deliveryQueue[M]) take() ([]Delivery[M], bool) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			batch := q.items
			q.items, q.spare = q.spare, nil
			q.mu.Unlock()
			return batch, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, false
		}
		<-q.wake
	}
}

// recycle keeps a drained batch's array for the next pushes, unless a burst
// made it large.
func (q *deliveryQueue[M]) recycle(batch []Delivery[M]) {
	if cap(batch) > 1024 {
		return
	}
	clear(batch)
	q.mu.Lock()
	if q.spare == nil && q.items == nil {
		q.items = batch[:0]
	} else if q.spare == nil {
		q.spare = batch[:0]
	}
	q.mu.Unlock()
}

// idleKeep is the largest array an empty queue keeps for the next
// broadcasts.
const idleKeep = 16

// trim gives back what a burst grew, if the queue is empty now. The reader
// calls it on every ping (every 3 s), so an idle connection holds nothing
// for long and a busy one is not made to regrow its arrays batch by batch.
func (q *deliveryQueue[M]) trim() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 && cap(q.items) > idleKeep {
		q.items = nil
	}
	if cap(q.spare) > idleKeep {
		q.spare = nil
	}
}

func (q *deliveryQueue[M]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
