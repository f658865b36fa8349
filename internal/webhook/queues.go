package webhook

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// delivery is the part of a JetStream message the queues use;
// jetstream.Msg satisfies it.
type delivery interface {
	Data() []byte
	Headers() nats.Header
	Subject() string
	Ack() error
	InProgress() error
	Metadata() (*jetstream.MsgMetadata, error)
}

// conv is the queue of one conversation: its events in stream order,
// queue[0] being delivered or waiting for its retry.
type conv struct {
	key     string
	queue   []delivery
	attempt int         // attempts already made on queue[0]
	retry   *time.Timer // the head's wait before its next attempt
}

// queues hold every event a runner took from JetStream until it is
// settled: one FIFO per conversation, and the conversations whose head
// may be attempted now, in turn for the workers. A head waiting for a
// retry takes no worker and is out of turn, so it slows no other
// conversation; its conversation's later events wait behind it, which
// keeps the order. The total is bounded by the consumer's MaxAckPending:
// JetStream delivers nothing more while that many are unacknowledged.
type queues struct {
	mu     sync.Mutex
	cond   *sync.Cond // signalled when ready grows or the queues close
	convs  map[string]*conv
	ready  []*conv    // FIFO of conversations whose head may be attempted
	parked []delivery // taken while another replica may hold older events
	held   int        // events in convs
	closed bool
}

func newQueues() *queues {
	q := &queues{convs: map[string]*conv{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// add appends m to its conversation. A new conversation takes its turn;
// one already held is in turn, with a worker, or waiting for a retry.
func (q *queues) add(m delivery) {
	key := laneKey(m.Subject())
	q.mu.Lock()
	defer q.mu.Unlock()
	q.held++
	if c := q.convs[key]; c != nil {
		c.queue = append(c.queue, m)
		return
	}
	c := &conv{key: key, queue: []delivery{m}}
	q.convs[key] = c
	q.enqueue(c)
}

// enqueue gives c its turn, at the back; q.mu is held.
func (q *queues) enqueue(c *conv) {
	if q.closed {
		return
	}
	q.ready = append(q.ready, c)
	q.cond.Signal()
}

// next waits for a conversation whose head may be attempted, and hands it
// to the calling worker. It returns nil once the queues are closed.
func (q *queues) next() *conv {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.ready) == 0 && !q.closed {
		q.cond.Wait()
	}
	if q.closed {
		return nil
	}
	c := q.ready[0]
	q.ready[0] = nil
	q.ready = q.ready[1:]
	return c
}

// head is the event of c a worker attempts, and how many attempts it had.
func (q *queues) head(c *conv) (delivery, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return c.queue[0], c.attempt
}

// settled removes c's head (acknowledged or dead-lettered); c takes a new
// turn, at the back, if it holds more.
func (q *queues) settled(c *conv) {
	q.mu.Lock()
	defer q.mu.Unlock()
	c.queue[0] = nil
	c.queue = c.queue[1:]
	c.attempt = 0
	q.held--
	if len(c.queue) == 0 {
		delete(q.convs, c.key)
		return
	}
	q.enqueue(c)
}

// later takes c out of turn for d, its head's wait before the next attempt.
func (q *queues) later(c *conv, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	c.attempt++
	if q.closed {
		return
	}
	c.retry = time.AfterFunc(d, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		c.retry = nil
		q.enqueue(c)
	})
}

// close wakes the workers for good and cancels the retry waits; the
// events still held stay unacknowledged (JetStream redelivers them).
func (q *queues) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for _, c := range q.convs {
		if c.retry != nil {
			c.retry.Stop()
		}
	}
	q.cond.Broadcast()
}

// park keeps m aside, undelivered, until release.
func (q *queues) park(m delivery) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.parked = append(q.parked, m)
	return len(q.parked)
}

// release queues the parked events in stream order: events of one
// conversation taken over from another replica come back as
// redeliveries after newer ones were already delivered here.
func (q *queues) release() {
	q.mu.Lock()
	ms := q.parked
	q.parked = nil
	q.mu.Unlock()
	slices.SortStableFunc(ms, func(a, b delivery) int { return cmp.Compare(streamSeq(a), streamSeq(b)) })
	for _, m := range ms {
		q.add(m)
	}
}

// count is how many events the queues hold, parked ones included.
func (q *queues) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.held + len(q.parked)
}

// all lists every event held, parked ones included.
func (q *queues) all() []delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	ms := make([]delivery, 0, q.held+len(q.parked))
	for _, c := range q.convs {
		ms = append(ms, c.queue...)
	}
	return append(ms, q.parked...)
}

// streamSeq is m's stream sequence, 0 when unknown.
func streamSeq(m delivery) uint64 {
	if md, err := m.Metadata(); err == nil {
		return md.Sequence.Stream
	}
	return 0
}

// laneKey is the ordering key of a subject: account and conversation
// (<prefix>.<account>.<inbox>.<contact>.<conversation>.<event...>), or
// account and contact when the conversation is unknown ("_"). Other
// subjects (relay lifecycle events) share one key.
func laneKey(subject string) string {
	t := strings.SplitN(subject, ".", 6)
	if len(t) < 6 || t[1] == "relay" {
		return "relay"
	}
	if t[4] != "_" {
		return t[1] + ".c." + t[4]
	}
	return t[1] + ".p." + t[3]
}
