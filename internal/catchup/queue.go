package catchup

import (
	"container/heap"
	"math/rand/v2"
	"time"
)

type jobState uint8

const (
	jobQueued  jobState = iota + 1 // in the queue
	jobRunning                     // an attempt is running
	jobWaiting                     // backing off after a failed attempt
)

// job is the one pending catch-up of a subscription. Guarded by
// Catchup.mu.
type job struct {
	id        string
	st        *State
	meta      *Target
	activity  time.Time // priority: most recent first
	triggered time.Time // first trigger not yet served
	epoch     uint32    // the subscription's epoch at the latest trigger
	seq       uint64    // FIFO among equal activity
	index     int       // position in the queue; -1 when not queued
	state     jobState
	rerun     bool // triggered again while running
	refused   bool // backing off because NATS refused the replays
	attempts  int  // failed attempts since the latest trigger
	timer     *time.Timer
}

// jobQueue is a heap of queued jobs, most recently active first.
type jobQueue []*job

func (q jobQueue) Len() int { return len(q) }

func (q jobQueue) Less(i, j int) bool {
	a, b := q[i], q[j]
	if !a.activity.Equal(b.activity) {
		return a.activity.After(b.activity)
	}
	return a.seq < b.seq
}

func (q jobQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *jobQueue) Push(x any) {
	j := x.(*job)
	j.index = len(*q)
	*q = append(*q, j)
}

func (q *jobQueue) Pop() any {
	old := *q
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	j.index = -1
	return j
}

// Trigger asks for a catch-up of the subscription: call it on every
// confirm, the first one included. lastActivity orders a backlog (most
// recent first). A subscription without catch-up data (registered by token
// only) is counted as skipped. A subscription has at most one pending
// catch-up: a trigger while one is queued updates it, a trigger while one
// runs makes it run once more afterwards.
func (c *Catchup) Trigger(meta *Target, lastActivity time.Time) {
	if meta == nil || meta.ID == "" || meta.State == nil {
		return
	}
	if !meta.CatchUp() {
		c.skip(meta.State)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.requestLocked(meta, lastActivity)
}

// Gap reports that a confirmed subscription missed a broadcast (the
// delivery queue overflowed): its cursors freeze and a catch-up is queued
// right away, since no confirm will follow.
//
// Gap may be called for every event lost in a burst: while a catch-up of
// the subscription is queued, or waiting out a retry backoff, further gaps
// are already covered (it will read Chatwoot after them) and cost a look
// at its job; a gap never cuts a backoff short (only a confirm does), so a
// NATS outage that drops both live and replayed events does not turn into
// back-to-back catch-ups. Subscriptions without catch-up data are left
// alone.
func (c *Catchup) Gap(meta *Target, lastActivity time.Time) {
	if meta == nil || meta.ID == "" || meta.State == nil || !meta.CatchUp() || c.gapPending(meta.State) {
		return
	}
	c.Lost(meta)
	c.Trigger(meta, lastActivity)
}

// gapPending reports whether the subscription is frozen with a catch-up
// that has not started yet: queued, or waiting to retry.
func (c *Catchup) gapPending(st *State) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if j := st.job; j == nil || (j.state != jobQueued && j.state != jobWaiting) {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return !st.is(thawed)
}

// Lost reports that the subscription's stream went away: its cursors stop
// following live events until a catch-up that started after the next
// confirm completes. What was seen live while frozen is kept: it was
// published, and the catch-up still starts from the frozen cursors.
func (c *Catchup) Lost(t *Target) {
	if t == nil || t.State == nil {
		return
	}
	st := t.State
	st.mu.Lock()
	defer st.mu.Unlock()
	st.epoch++
	st.set(thawed, false)
}

// Forget drops everything known about a removed or invalid subscription
// and cancels its pending catch-up; a running attempt finishes without
// effect. The State is as new (frozen, nothing loaded) for a subscription
// added again; one whose record is gone goes with it: a late live event is
// only remembered in it, and nothing of it is written.
func (c *Catchup) Forget(t *Target) {
	if t == nil || t.State == nil {
		return
	}
	st := t.State
	c.mu.Lock()
	defer c.mu.Unlock()
	if j := st.job; j != nil {
		c.dropJobLocked(j)
		st.job = nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.epoch++ // what was seen before is older than any later catch-up
	st.flags &= queued
	st.cursors, st.pending = nil, nil
}

func (c *Catchup) skip(st *State) {
	c.m.runs[resultSkipped].Inc()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.set(noCatchUp, true)
	st.pending = nil
}

// requestLocked creates or updates the subscription's job.
func (c *Catchup) requestLocked(meta *Target, activity time.Time) {
	st := meta.State
	j := st.job
	if j == nil {
		j = &job{id: meta.ID, st: st, index: -1, triggered: c.now()}
		st.job = j
	}
	st.mu.Lock()
	st.set(noCatchUp, false)
	j.meta, j.epoch = meta, st.epoch
	st.mu.Unlock()
	if activity.After(j.activity) {
		j.activity = activity
	}
	switch j.state {
	case jobQueued:
		heap.Fix(&c.queue, j.index)
	case jobRunning:
		if !j.rerun {
			j.rerun, j.triggered = true, c.now()
		}
	case jobWaiting: // a fresh confirm: try again now
		c.stopTimerLocked(j)
		j.attempts = 0
		c.enqueueLocked(j)
	default:
		c.enqueueLocked(j)
	}
}

func (c *Catchup) enqueueLocked(j *job) {
	j.refused = false
	c.seq++
	j.seq, j.state = c.seq, jobQueued
	heap.Push(&c.queue, j)
	c.m.queued.Set(float64(c.queue.Len()))
	c.signal()
}

func (c *Catchup) dropJobLocked(j *job) {
	switch j.state {
	case jobQueued:
		heap.Remove(&c.queue, j.index)
		c.m.queued.Set(float64(c.queue.Len()))
	case jobWaiting:
		c.stopTimerLocked(j)
	}
}

// Resume retries at once every catch-up that is backing off because NATS
// refused its replays. Call it when the fan-out takes events again (its
// buffer drained), so the gaps of an outage are filled when it ends, not up
// to RetryMax later.
func (c *Catchup) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for j := range c.waiting {
		if j.refused {
			c.stopTimerLocked(j)
			c.enqueueLocked(j)
		}
	}
}

func (c *Catchup) stopTimerLocked(j *job) {
	if j.timer != nil {
		j.timer.Stop()
		j.timer = nil
		c.notWaitingLocked(j)
	}
}

func (c *Catchup) stopTimersLocked() {
	for j := range c.waiting {
		c.stopTimerLocked(j)
	}
}

// notWaitingLocked takes j out of the jobs in backoff.
func (c *Catchup) notWaitingLocked(j *job) {
	delete(c.waiting, j)
	c.m.backoff.Set(float64(len(c.waiting)))
}

// signal wakes one idle worker.
func (c *Catchup) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// retryLocked schedules the next attempt of j after a backoff.
func (c *Catchup) retryLocked(j *job) time.Duration {
	d := c.backoff(j.attempts)
	j.state = jobWaiting
	c.waiting[j] = struct{}{}
	c.m.backoff.Set(float64(len(c.waiting)))
	j.timer = time.AfterFunc(d, func() { c.retryDue(j) })
	return d
}

func (c *Catchup) retryDue(j *job) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if j.state != jobWaiting || j.timer == nil || c.closed {
		return // re-triggered, forgotten or closed meanwhile
	}
	j.timer = nil
	c.notWaitingLocked(j)
	c.enqueueLocked(j)
}

// backoff returns the wait after the n-th failed attempt: exponential from
// RetryMin, capped at RetryMax, with jitter in [d/2, d].
func (c *Catchup) backoff(n int) time.Duration {
	d := c.opts.RetryMin
	for i := 1; i < n && d < c.opts.RetryMax; i++ {
		d *= 2
	}
	d = min(d, c.opts.RetryMax)
	return d/2 + rand.N(d/2+1)
}

// worker runs queued catch-ups until Close.
func (c *Catchup) worker() {
	defer c.wg.Done()
	for {
		a, ok := c.next()
		if !ok {
			return
		}
		c.execute(a)
	}
}

// next waits for the highest-priority queued job and marks it running.
func (c *Catchup) next() (*attempt, bool) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, false
		}
		if c.queue.Len() > 0 {
			a := c.startLocked(heap.Pop(&c.queue).(*job))
			if c.queue.Len() > 0 {
				c.signal() // pass the wake-up on to another idle worker
			}
			c.mu.Unlock()
			return a, true
		}
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-c.done:
			return nil, false
		}
	}
}

// startLocked turns a popped job into an attempt.
func (c *Catchup) startLocked(j *job) *attempt {
	j.state, j.rerun = jobRunning, false
	c.running++
	c.m.queued.Set(float64(c.queue.Len()))
	c.m.running.Set(float64(c.running))
	j.attempts++
	return &attempt{
		job: j, st: j.st, id: j.id, meta: j.meta, epoch: j.epoch,
		triggered: j.triggered, n: j.attempts,
	}
}
