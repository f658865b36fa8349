// Package group runs concurrent operations in shared batches without
// delaying any of them: an operation that finds no batch under way runs at
// once, alone; operations that arrive while a batch runs queue, and the
// next batch takes them all. A lone operation pays nothing extra; many at
// once share one batch's cost (an fsync, a store round trip).
//
// The store's group commit (store/bolt) and the API's grouped registrations
// are built on it.
package group

import "sync"

// Queue runs queued operations of type T in batches, one batch at a time.
// The zero Queue is not usable: make one with New.
type Queue[T any] struct {
	run func([]T) // runs one batch and settles every operation in it
	max int       // most operations per batch; 0: no bound

	mu      sync.Mutex
	running bool // a batch is under way
	queue   []T  // waiting for the next batch
}

// New returns a Queue whose batches of at most max operations (0: any
// number) are run by run. run must settle every operation it is given (the
// caller waits for that, through the operation) and must not panic: a
// panic would leave the queue stopped.
func New[T any](max int, run func([]T)) *Queue[T] {
	return &Queue[T]{run: run, max: max}
}

// Add queues op. A caller that finds no batch under way leads: the batch
// holding op runs before Add returns, and later batches are left to a
// goroutine, so no caller waits for more than the batch holding its
// operation. Otherwise Add returns at once and op runs in a later batch;
// the caller waits for op to be settled.
func (q *Queue[T]) Add(op T) {
	q.mu.Lock()
	q.queue = append(q.queue, op)
	lead := !q.running
	q.running = true
	q.mu.Unlock()
	if lead {
		q.lead()
	}
}

// lead runs one batch of queued operations, then hands what queued
// meanwhile to a new leader.
func (q *Queue[T]) lead() {
	q.mu.Lock()
	n := len(q.queue)
	if q.max > 0 {
		n = min(n, q.max)
	}
	ops := q.queue[:n:n]
	q.queue = q.queue[n:]
	q.mu.Unlock()
	q.run(ops)
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) == 0 {
		q.running, q.queue = false, nil
		return
	}
	go q.lead()
}

// State reports whether a batch is under way and how many operations wait
// for the next one.
func (q *Queue[T]) State() (running bool, queued int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running, len(q.queue)
}
