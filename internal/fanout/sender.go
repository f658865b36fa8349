package fanout

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The sender is one goroutine (run) that moves events from the queue to
// NATS, keeping at most InFlight unacknowledged, and handles outcomes
// strictly in publish order:
//
//	queue ──fill──> in flight ──ack ok──> released (published)
//	  ^                  │
//	  └──── requeue ─────┘ ack failed: wait until everything in flight has
//	                       resolved, put the failures back at the head of the
//	                       queue in their original order, back off, resend.
//
// Going back to the oldest failure keeps per-subscription order across a
// connection loss (messages reach the server in TCP order, so a lost one is
// followed by lost ones). Resent events that had in fact been stored are
// dropped by JetStream's duplicate window (Nats-Msg-Id).

// run is the sender loop.
func (f *Fanout) run() {
	defer close(f.runDone)
	for f.step() {
	}
	f.dropRemaining()
}

// step does one round: publish what may be published, then wait for one
// outcome or state change. It returns false when the loop must end. It
// holds sendMu except while it waits.
func (f *Fanout) step() bool {
	f.sendMu.Lock()
	defer f.sendMu.Unlock()
	f.noticeDrained()
	changed := f.pub.Changed()
	if f.sendable() {
		f.retryAt = time.Time{} // the wait is over: publishNow need not read the clock
		f.fill()
	}
	switch {
	case f.inflight.len() > 0:
		return f.awaitAcks()
	case f.q.waitingLen() == 0:
		return f.awaitWork()
	}
	return f.awaitSendable(changed)
}

// noticeDrained calls Options.Drained once the buffer stopped shedding
// after an overflow, even if both happened since the last step.
func (f *Fanout) noticeDrained() {
	if n := f.q.overflows.Load(); n != f.drainedAt && !f.q.shedding.Load() {
		f.drainedAt = n
		if f.opts.Drained != nil {
			f.opts.Drained()
		}
	}
}

func (f *Fanout) sendable() bool {
	return !f.rewinding && !f.backingOff() && f.pub.Connected()
}

// backingOff reports whether the sender waits before trying NATS again
// after a failure.
func (f *Fanout) backingOff() bool {
	return !f.retryAt.IsZero() && time.Now().Before(f.retryAt)
}

// fill publishes waiting events until the in-flight window is full.
func (f *Fanout) fill() {
	for f.inflight.len() < f.opts.InFlight {
		it := f.q.next()
		if it == nil {
			return
		}
		ack, err := f.pub.Publish(&it.msg)
		if err != nil {
			if !f.publishFailed(it, err) {
				return
			}
			continue
		}
		it.ack = ack
		f.inflight.pushBack(it)
		f.inflightN.Add(1)
	}
}

// publishFailed handles an error returned by Publish itself and reports
// whether filling may go on.
func (f *Fanout) publishFailed(it *item, err error) bool {
	if permanent(err) {
		f.m.failures[failRejected].Inc()
		f.drop(it, dropPublishError, err)
		return true
	}
	f.m.failures[classify(err)].Inc()
	f.q.requeue(it)
	f.backOff()
	return false
}

// awaitAcks waits for the oldest in-flight event (or for new events while
// the window has room), then takes every further outcome already there.
func (f *Fanout) awaitAcks() bool {
	it := f.inflight.front()
	var more chan struct{}
	if f.inflight.len() < f.opts.InFlight && !f.rewinding {
		more = f.q.signal
	}
	var (
		ok  bool
		err error
	)
	f.sendMu.Unlock()
	select {
	case <-it.ack.Ok():
		ok = true
	case err = <-it.ack.Err():
	case <-more:
	case <-f.abort:
	}
	f.sendMu.Lock()
	switch {
	case ok:
		f.acked()
	case err != nil:
		f.nacked(err)
	case f.aborted():
		return false
	default:
		return true
	}
	for f.inflight.len() > 0 {
		it := f.inflight.front()
		select {
		case <-it.ack.Ok():
			f.acked()
		case err := <-it.ack.Err():
			f.nacked(err)
		default:
			return true
		}
	}
	return true
}

// awaitWork waits for events when nothing is buffered.
func (f *Fanout) awaitWork() bool {
	f.sendMu.Unlock()
	defer f.sendMu.Lock()
	select {
	case <-f.q.signal:
		return true
	case <-f.closing:
		return f.q.waitingLen() > 0
	case <-f.abort:
		return false
	}
}

// awaitSendable waits while events are buffered but cannot be sent:
// disconnected, or backing off after a failure.
func (f *Fanout) awaitSendable(changed <-chan struct{}) bool {
	f.sendMu.Unlock()
	defer f.sendMu.Lock()
	if !f.pub.Connected() {
		select {
		case <-changed:
			f.sendMu.Lock()
			f.retryAt = time.Time{}
			f.sendMu.Unlock()
			return true
		case <-f.abort:
			return false
		}
	}
	d := time.Until(f.retryAt)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-changed:
	case <-f.abort:
		return false
	}
	return true
}

func (f *Fanout) popInflight() *item {
	f.inflightN.Add(-1)
	return f.inflight.popFront()
}

// aborted reports whether Close's context ended: stop now.
func (f *Fanout) aborted() bool {
	select {
	case <-f.abort:
		return true
	default:
		return false
	}
}

// publishNow publishes it on the caller's goroutine, without a hand-off to
// the sender, when that keeps every order: core NATS (nothing to await),
// nothing buffered or in flight before it, and the sender neither busy nor
// backing off. It reports whether it did; if not, it must be buffered.
func (f *Fanout) publishNow(it *item) bool {
	if !f.core || !f.sendMu.TryLock() {
		return false
	}
	defer f.sendMu.Unlock()
	// Not pub.Connected (a lock of the NATS connection per event): core
	// NATS refuses a publish while disconnected (no reconnect buffer), and
	// the sender meets that error.
	if f.closed.Load() || f.inflight.len() > 0 || f.q.waitingLen() > 0 || f.rewinding || f.backingOff() {
		return false
	}
	if _, err := f.pub.Publish(&it.msg); err != nil {
		return false // the sender meets the error and handles it
	}
	f.m.publishedNow.Inc()
	f.completed(it)
	recycle(it) // published and settled: nothing refers to it
	return true
}

// acked completes the oldest in-flight event.
func (f *Fanout) acked() {
	it := f.popInflight()
	if f.full.CompareAndSwap(true, false) {
		f.log.Info("fanout: JetStream stream takes events again")
	}
	f.completed(it)
	f.q.release(it)
	if !f.rewinding {
		f.failures = 0
	}
	f.finishRewind()
}

// completed reports an event NATS holds: metrics, its subscription's
// owner, its Done and the duplicates that waited for it.
func (f *Fanout) completed(it *item) {
	f.m.published[it.kind].Inc()
	f.m.latency.Observe(time.Since(it.enq).Seconds())
	if it.sub != nil || it.subID != "" {
		f.published(it.sub, it.subID, it.route)
	}
	it.finish(nil)
	f.settle(it, nil)
}

// nacked records a failed acknowledgement of the oldest in-flight event.
func (f *Fanout) nacked(err error) {
	it := f.popInflight()
	class := classify(err)
	f.m.failures[class].Inc()
	f.rewinding = true
	if class == failFull && f.full.CompareAndSwap(false, true) {
		f.log.Error("fanout: JetStream stream full, events held until room is made (raise its max bytes or messages, or free the server's storage)", "err", err)
	}
	if class == failRejected || class == failOther {
		it.attempts++
		if it.attempts >= f.opts.MaxAttempts {
			f.drop(it, dropPublishError, err)
			f.finishRewind()
			return
		}
	}
	f.failed = append(f.failed, it)
	f.finishRewind()
}

// finishRewind requeues the failed events once nothing is in flight.
func (f *Fanout) finishRewind() {
	if !f.rewinding || f.inflight.len() > 0 {
		return
	}
	f.rewinding = false
	if len(f.failed) == 0 {
		return
	}
	f.q.requeue(f.failed...)
	f.m.retries.Add(float64(len(f.failed)))
	clear(f.failed)
	f.failed = f.failed[:0]
	f.backOff()
}

func (f *Fanout) backOff() {
	f.failures++
	f.retryAt = time.Now().Add(backoff(f.failures, f.opts.RetryMin, f.opts.RetryMax))
}

// drop gives up on an event that was accepted into the buffer.
func (f *Fanout) drop(it *item, reason dropReason, err error) {
	f.q.release(it)
	f.dedup.forget(it.key)
	outcome := ErrClosed
	if reason != dropShutdown {
		outcome = fmt.Errorf("%w: %w", ErrRejected, err)
	}
	it.finish(outcome)
	f.settle(it, outcome)
	f.m.dropped[reason].Inc()
	if reason == dropShutdown {
		f.shutdownN.Add(1)
		return
	}
	f.logPublish.Do(func() {
		f.log.Warn("fanout: event dropped", "subject", it.msg.Subject, "reason", dropNames[reason], "err", err)
	})
}

// dropRemaining counts everything still held when the loop ends.
func (f *Fanout) dropRemaining() {
	f.sendMu.Lock()
	defer f.sendMu.Unlock()
	for f.inflight.len() > 0 {
		f.drop(f.popInflight(), dropShutdown, nil)
	}
	for _, it := range f.failed {
		f.drop(it, dropShutdown, nil)
	}
	f.failed = nil
	for _, it := range f.q.drain() {
		f.m.dropped[dropShutdown].Inc()
		f.dedup.forget(it.key)
		it.finish(ErrClosed)
		f.settle(it, ErrClosed)
		f.shutdownN.Add(1)
	}
}

// permanent reports publish errors that no retry can fix.
func permanent(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) ||
		errors.Is(err, nats.ErrHeadersNotSupported)
}

// classify maps a publish or acknowledgement error to a failure reason.
// Only rejected/other count towards MaxAttempts.
func classify(err error) failure {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, ErrStreamNotReady), errors.Is(err, nats.ErrReconnectBufExceeded),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, nats.ErrConnectionDraining), errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return failNotConnected
	case errors.Is(err, nats.ErrDisconnected):
		return failDisconnected
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, nats.ErrTimeout):
		return failTimeout
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return failNoStream
	case errors.As(err, &apiErr) && streamFull(apiErr):
		return failFull
	case errors.As(err, &apiErr):
		return failRejected
	}
	return failOther
}

// JetStream error codes of a store that has no room.
const (
	jsInsufficientResources = 10023 // the server's storage (max_file_store, max_mem_store, disk)
	jsStreamStoreFailed     = 10077 // "maximum bytes exceeded" and the like (discard new)
)

// streamFull reports a refusal that making room fixes: the stream reached
// its limits with discard new, or the server ran out of storage. Such
// events are retried without limit (the buffer sheds, and catch-up fills,
// if it lasts), never dropped as rejected.
func streamFull(e *jetstream.APIError) bool {
	switch e.ErrorCode {
	case jsInsufficientResources:
		return true
	case jsStreamStoreFailed:
		d := strings.ToLower(e.Description)
		return (strings.Contains(d, "maximum") && strings.Contains(d, "exceeded")) || strings.Contains(d, "resources")
	}
	return false
}
