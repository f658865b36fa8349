package cable

// subQueue is a FIFO of subscriptions waiting for their paced subscribe.
// Entries are re-checked when popped: one may have been removed or placed
// elsewhere meanwhile. Guarded by Pool.mu.
type subQueue[M any] struct {
	items []*sub[M]
	head  int
}

func (q *subQueue[M]) push(s *sub[M]) { q.items = append(q.items, s) }

func (q *subQueue[M]) len() int { return len(q.items) - q.head }

// pop returns the oldest entry, or nil when the queue is empty.
func (q *subQueue[M]) pop() *sub[M] {
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
		return nil
	}
	s := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head > 1024 && q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	return s
}
