package catchup

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store"
)

// outcome is how an attempt ended.
type outcome uint8

const (
	outOK       outcome = iota + 1
	outRetry            // transient failure, retried after a backoff
	outFailed           // gave up after MaxAttempts or on a permanent error
	outGone             // Chatwoot: the contact inbox does not exist (404)
	outRemoved          // the subscription was removed meanwhile
	outRequeued         // failed, but triggered again meanwhile: runs again now
	outCanceled         // Close
)

// Lifecycle reasons of a catchup.done that did not fill the gap.
const (
	ReasonError = "error"
	ReasonGone  = "gone"
)

// execute runs one attempt and settles its job.
func (c *Catchup) execute(a *attempt) {
	begin := c.now()
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.RunTimeout)
	res, err := c.catchUp(ctx, a)
	cancel()
	c.m.duration.Observe(c.now().Sub(begin).Seconds())
	out, wait := c.finish(a, err)
	c.report(a, res, out, wait, err)
}

// classify maps an attempt's error to its outcome before retry limits.
func (c *Catchup) classify(err error) outcome {
	switch {
	case err == nil:
		return outOK
	case errors.Is(err, errRemoved) || errors.Is(err, store.ErrNotFound):
		return outRemoved
	case c.ctx.Err() != nil:
		return outCanceled
	case errors.Is(err, chatwoot.ErrNotFound):
		return outGone
	case errors.Is(err, chatwoot.ErrArgument):
		return outFailed
	}
	return outRetry
}

// finish updates the job and the subscription after an attempt.
func (c *Catchup) finish(a *attempt, err error) (outcome, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running--
	c.m.running.Set(float64(c.running))
	j := a.job
	if a.st.job != j {
		return outRemoved, 0 // forgotten meanwhile
	}
	out := c.classify(err)
	switch out {
	case outOK:
		c.succeededLocked(a)
	case outRetry:
		if errors.Is(err, errNotPublished) {
			// NATS did not take the replays (an outage, a full buffer):
			// not the subscription's fault, so it never uses up the
			// attempts, and it backs off even when triggered meanwhile
			// (the retry starts after that trigger, so it covers it).
			j.rerun = false
			d := c.retryLocked(j)
			j.refused = true
			return outRetry, d
		}
		if j.rerun {
			out = outRequeued
			break
		}
		if a.n < c.opts.MaxAttempts {
			return outRetry, c.retryLocked(j)
		}
		out = outFailed
	case outGone, outRemoved, outCanceled:
		j.rerun = false
	}
	if j.rerun {
		j.attempts = 0
		c.enqueueLocked(j)
	} else {
		a.st.job = nil
	}
	return out, 0
}

// succeededLocked ends the freeze when the attempt covered the latest
// confirm: it started after it and no loss happened since.
func (c *Catchup) succeededLocked(a *attempt) {
	st := a.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if a.epoch != st.epoch {
		return // lost again meanwhile: stay frozen, keep what was seen since
	}
	c.mergePendingLocked(a.id, st)
	if !a.job.rerun {
		st.set(thawed, true)
	}
}

// report counts, logs and announces the end of an attempt.
func (c *Catchup) report(a *attempt, res result, out outcome, wait time.Duration, err error) {
	log := c.log.With("subscription", a.id)
	switch out {
	case outOK:
		c.m.runs[resultOK].Inc()
		c.m.latency.Observe(c.now().Sub(a.triggered).Seconds())
		log.Info("catch-up done", "conversations", res.conversations, "replayed", res.replayed)
		c.announce(a, res, "")
	case outRetry:
		c.m.retries.Inc()
		level := slog.LevelWarn
		if errors.Is(err, errNotPublished) && a.n > 1 {
			// NATS is away or full: the fan-out already says so, and a long
			// outage would log this for every subscription every minute.
			level = slog.LevelDebug
		}
		log.Log(c.ctx, level, "catch-up failed, retrying", "attempt", a.n, "backoff", wait, "err", err)
	case outRequeued:
		log.Info("catch-up failed, triggered again", "attempt", a.n, "err", err)
	case outFailed:
		c.m.runs[resultError].Inc()
		log.Error("catch-up failed, giving up until the next confirm", "attempts", a.n, "err", err)
		c.announce(a, res, ReasonError)
	case outGone:
		c.m.runs[resultGone].Inc()
		log.Warn("catch-up: contact not found in Chatwoot; giving up", "err", err)
		if c.opts.OnGone != nil {
			c.opts.OnGone(a.id)
		}
		c.announce(a, res, ReasonGone)
	case outRemoved:
		c.m.runs[resultGone].Inc()
		log.Debug("catch-up dropped: subscription removed")
	}
}

// announce publishes catchup.done; reason is empty when the gap was filled.
func (c *Catchup) announce(a *attempt, res result, reason string) {
	h := a.meta.Hints()
	fill(&h.AccountID, res.hints.AccountID)
	fill(&h.InboxID, res.hints.InboxID)
	fill(&h.ContactID, res.hints.ContactID)
	err := c.opts.Sink.Lifecycle(fanout.LifecycleEvent{
		Event: fanout.CatchupDone, SubscriptionID: a.id, At: c.now(), Reason: reason,
		AccountID: h.AccountID, InboxID: h.InboxID, ContactID: h.ContactID,
		Replayed: res.replayed, Conversations: res.conversations,
	})
	if err != nil {
		c.log.Warn("catchup: catchup.done not published", "subscription", a.id, "err", err)
	}
}

// fill sets *dst to v when *dst is empty.
func fill(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}
