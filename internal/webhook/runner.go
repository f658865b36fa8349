package webhook

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// runner delivers one endpoint's events in this process. Its fetch loop
// pulls from the endpoint's durable consumer into the queues, one per
// conversation, and never waits for a delivery; Concurrency workers take
// the conversations in turn and attempt their head events.
type runner struct {
	ep   Endpoint
	url  *url.URL // ep.URL, parsed once
	sig  *signer
	e    *Engine
	cons jetstream.Consumer
	lim  *rate.Limiter
	br   *breaker
	q    *queues
	n    int // workers
	log  *slog.Logger
	ring *ring

	ctx     context.Context
	cancel  context.CancelFunc
	done    sync.WaitGroup
	backlog atomic.Int64 // consumer pending + unacknowledged, refreshed by pollBacklog
	pin     atomic.Value // string: the pin id of the last message pulled
}

// newRunner prepares ep (already validated) on consumer cons.
func newRunner(e *Engine, ep Endpoint, cons jetstream.Consumer) *runner {
	sig, _ := newSigner(ep.Secrets, ep.ChatwootSignature)
	lim := rate.NewLimiter(rate.Inf, 1)
	if ep.RateLimit > 0 {
		lim = rate.NewLimiter(rate.Limit(ep.RateLimit), max(1, int(ep.RateLimit)))
	}
	u, _ := url.Parse(ep.URL) // validated
	r := &runner{ep: ep, url: u, sig: sig, e: e, cons: cons, lim: lim, log: e.log.With("endpoint", ep.ID),
		ring: e.ring(ep.ID), q: newQueues(), n: or(ep.Concurrency, e.opts.Concurrency)}
	r.br = newBreaker(e.opts.BreakerThreshold, e.opts.BreakerCooldown, e.m.circuitChange)
	r.pin.Store("")
	return r
}

// start runs the fetch loop, the workers and the keep-alive until stop.
func (r *runner) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx, r.cancel = ctx, cancel
	r.e.m.circuitChange("", circuitClosed)
	r.done.Add(r.n + 2)
	for range r.n {
		go func() { defer r.done.Done(); r.work(ctx) }()
	}
	go func() { defer r.done.Done(); r.keepAlive(ctx, r.e.opts.AckWait/3) }()
	go func() { defer r.done.Done(); r.fetch(ctx) }()
}

// stop ends every goroutine; unacknowledged messages are redelivered by
// JetStream after AckWait (to this or another replica).
func (r *runner) stop() {
	r.cancel()
	r.q.close()
	r.done.Wait()
	r.e.m.circuitChange(r.br.current(), "")
}

// fetch pulls messages into the queues until ctx ends. It pulls again
// well within PinnedTTL, so the pin stays here while this runner lives.
func (r *runner) fetch(ctx context.Context) {
	it, err := r.cons.Messages(jetstream.PullPriorityGroup(priorityGroup),
		jetstream.PullMaxMessages(r.e.opts.Batch), jetstream.PullExpiry(pullExpiry(r.e.opts.PinnedTTL)))
	if err != nil {
		r.log.Error("webhook: pull", "err", err)
		return
	}
	go func() { <-ctx.Done(); it.Stop() }()
	var b barrier
	for {
		var m jetstream.Msg
		if b.up {
			m, err = it.Next(jetstream.NextMaxWait(barrierPoll))
		} else {
			m, err = it.Next()
		}
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			r.log.Debug("webhook: pull", "err", err)
		}
		if pin := pinOf(m); pin != "" && pin != r.pin.Load().(string) {
			r.pin.Store(pin)
			if !b.up {
				b = barrier{up: true}
			}
		}
		if m != nil && r.internal(m.Subject()) {
			_ = m.Ack()
			continue
		}
		r.take(ctx, &b, m)
	}
}

// take queues m (nil after a pull timeout or error), or parks it while
// the barrier is up, lowering the barrier once no other replica holds an
// event of this endpoint.
func (r *runner) take(ctx context.Context, b *barrier, m jetstream.Msg) {
	if !b.up {
		if m != nil {
			r.q.add(m)
		}
		return
	}
	if m != nil {
		r.q.park(m)
	}
	if time.Since(b.checked) < barrierPoll {
		return
	}
	b.checked = time.Now()
	others := r.heldElsewhere(ctx)
	if others != 0 {
		if !b.logged && others > 0 {
			b.logged = true
			r.log.Info("webhook: waiting for events held elsewhere to be redelivered here first", "events", others)
		}
		return
	}
	b.up = false
	r.q.release()
}

// heldElsewhere counts the events of this endpoint delivered but
// unacknowledged and not in this runner's hands: held by another replica
// or a previous run here until JetStream redelivers them (after AckWait),
// or already sent here but not read yet. Those on their way count too:
// they are typically the redeliveries the barrier waits for, and
// JetStream may send them out of stream order, so only once they are
// parked can release put them back in order. It is -1 when unknown.
// Workers only settle events, so counting the held ones after the look
// can only overstate the others, never release the barrier too early.
func (r *runner) heldElsewhere(ctx context.Context) int {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := r.cons.Info(ictx)
	cancel()
	if err != nil {
		return -1
	}
	return max(0, info.NumAckPending-r.q.count())
}

// barrier holds new events back after this runner got the endpoint's pin
// (at start, or taking over from another replica): the previous holder's
// unacknowledged events come back as redeliveries, and a conversation's
// newer events must not be delivered before them.
type barrier struct {
	up      bool
	checked time.Time // last look at the consumer
	logged  bool
}

// barrierPoll is how often a raised barrier looks at the consumer.
const barrierPoll = 200 * time.Millisecond

// pinHeader carries the pin id on every message of a pinned consumer.
const pinHeader = "Nats-Pin-Id"

// pinOf is the pin id m was delivered under, "" for none.
func pinOf(m jetstream.Msg) string {
	if m == nil {
		return ""
	}
	return m.Headers().Get(pinHeader)
}

// pullExpiry renews pull requests within PinnedTTL: the server keeps the
// pin of a replica that asks again in time.
func pullExpiry(pinnedTTL time.Duration) time.Duration {
	return max(time.Second, min(30*time.Second, pinnedTTL/2))
}

// keepAlive tells JetStream every interval that the held events are still
// being worked on. When the consumer was pinned to another client at two
// looks in a row while this runner holds events (it was cut off longer
// than PinnedTTL), it restarts the runner: the events go back to JetStream,
// which redelivers them where the pin is now.
func (r *runner) keepAlive(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	elsewhere := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held := r.q.all()
		lost := len(held) > 0 && r.pinElsewhere(ctx)
		if lost && elsewhere {
			r.log.Warn("webhook: another replica took this endpoint over; releasing its events")
			go r.e.restart(r)
			return
		}
		elsewhere = lost
		for _, m := range held {
			_ = m.InProgress()
		}
	}
}

// pinElsewhere reports whether the consumer is pinned to a client other
// than the one this runner last got messages as. (A new pin of this very
// runner, without a message yet, looks the same; two looks in a row and
// events held make that unlikely, and a restart then costs only a wait.)
func (r *runner) pinElsewhere(ctx context.Context) bool {
	if r.cons == nil {
		return false
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, err := r.cons.Info(ictx)
	cancel()
	if err != nil {
		return false
	}
	mine := r.pin.Load().(string)
	for _, g := range info.PriorityGroups {
		if g.Group == priorityGroup && g.PinnedClientID != "" && mine != "" && g.PinnedClientID != mine {
			return true
		}
	}
	return false
}

// internal reports the relay's own webhook subjects (dead letters), never
// delivered to an endpoint: a catch-all endpoint would loop on them.
func (r *runner) internal(subject string) bool {
	return strings.HasPrefix(subject, r.e.opts.Prefix+".relay.webhook.")
}

// work attempts the head events of the conversations in turn until the
// queues close or an attempt must stop the runner.
func (r *runner) work(ctx context.Context) {
	for {
		c := r.q.next()
		if c == nil {
			return
		}
		m, n := r.q.head(c)
		wait, st := r.attempt(ctx, m, n)
		switch st {
		case stepStop:
			return
		case stepSettled:
			r.q.settled(c)
		case stepRetry:
			r.q.later(c, wait)
		}
	}
}

// step is what an attempt leaves to do with its event.
type step int

const (
	stepSettled step = iota // acknowledged or dead-lettered
	stepRetry               // attempt again after the wait
	stepStop                // the runner stops, the event unsettled (context ended, 410)
)

// attempt makes attempt number n+1 of m.
func (r *runner) attempt(ctx context.Context, m delivery, n int) (time.Duration, step) {
	if r.br.wait(ctx) != nil || r.lim.Wait(ctx) != nil {
		return 0, stepStop
	}
	ev := newEvent(m)
	res := postTo(ctx, r.e.client, r.url, r.sig, ev, r.e.opts.Timeout)
	if ctx.Err() != nil {
		return 0, stepStop
	}
	r.br.record(res.ok())
	r.observe(ev, n, res)
	switch {
	case res.ok():
		_ = m.Ack()
		return 0, stepSettled
	case res.status == 410:
		r.gone()
		return 0, stepStop
	case n >= len(r.e.opts.Schedule):
		if r.deadLetter(ctx, m, ev, n+1, res) {
			return 0, stepSettled
		}
		return 0, stepStop
	}
	return retryDelay(r.e.opts.Schedule, n, r.e.opts.Jitter, res.retryAfter, r.e.opts.MaxRetryAfter), stepRetry
}

// observe records an attempt in metrics and the recent-attempts ring.
func (r *runner) observe(ev event, n int, res result) {
	outcome := "success"
	switch {
	case res.status == 410:
		outcome = "gone"
	case !res.ok() && n >= len(r.e.opts.Schedule):
		outcome = "dead"
	case !res.ok():
		outcome = "retry"
	}
	r.e.m.attempt(outcome, res)
	r.ring.add(Attempt{At: time.Now().UTC(), EventID: ev.id, Seq: ev.seq, Subject: ev.subject,
		Attempt: n + 1, Status: res.status, LatencyMS: float64(res.latency.Microseconds()) / 1000,
		Error: res.err, Outcome: outcome})
}

// gone disables the endpoint after a 410: the message stays
// unacknowledged, so re-enabling the endpoint delivers it again.
func (r *runner) gone() {
	r.log.Warn("webhook: receiver answered 410 Gone; endpoint disabled")
	go r.e.disable(r.ep.ID)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
