package webhook

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// runner delivers one endpoint's events in this process. Its fetch loop
// pulls from the endpoint's durable consumer and hands each message to the
// lane of its conversation; each lane delivers in order, retrying its head.
type runner struct {
	ep    Endpoint
	sig   *signer
	e     *Engine
	cons  jetstream.Consumer
	lim   *rate.Limiter
	br    *breaker
	lanes []*lane
	log   *slog.Logger
	ring  *ring

	ctx     context.Context
	cancel  context.CancelFunc
	done    sync.WaitGroup
	backlog atomic.Int64 // consumer pending + unacknowledged, refreshed by pollBacklog
}

// newRunner prepares ep (already validated) on consumer cons.
func newRunner(e *Engine, ep Endpoint, cons jetstream.Consumer) *runner {
	sig, _ := newSigner(ep.Secrets, ep.ChatwootSignature)
	n := ep.Concurrency
	if n == 0 {
		n = e.opts.Concurrency
	}
	lim := rate.NewLimiter(rate.Inf, 1)
	if ep.RateLimit > 0 {
		lim = rate.NewLimiter(rate.Limit(ep.RateLimit), max(1, int(ep.RateLimit)))
	}
	r := &runner{ep: ep, sig: sig, e: e, cons: cons, lim: lim, log: e.log.With("endpoint", ep.ID),
		ring: e.ring(ep.ID)}
	r.br = newBreaker(e.opts.BreakerThreshold, e.opts.BreakerCooldown, e.m.circuitChange)
	for range n {
		r.lanes = append(r.lanes, newLane(e.opts.LaneDepth))
	}
	return r
}

// start runs the fetch loop and the lanes until stop.
func (r *runner) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.ctx, r.cancel = ctx, cancel
	r.e.m.circuitChange("", circuitClosed)
	for _, l := range r.lanes {
		r.done.Add(2)
		go func() { defer r.done.Done(); r.serveLane(ctx, l) }()
		go func() { defer r.done.Done(); l.keepAlive(ctx, r.e.opts.AckWait/3) }()
	}
	r.done.Add(1)
	go func() { defer r.done.Done(); r.fetch(ctx) }()
}

// stop ends every goroutine; unacknowledged messages are redelivered by
// JetStream after AckWait (to this or another replica).
func (r *runner) stop() {
	r.cancel()
	r.done.Wait()
	r.e.m.circuitChange(r.br.current(), "")
}

// fetch pulls messages and dispatches them to lanes until ctx ends.
func (r *runner) fetch(ctx context.Context) {
	if r.awaitOrphans(ctx) != nil {
		return
	}
	it, err := r.cons.Messages(jetstream.PullPriorityGroup(priorityGroup),
		jetstream.PullMaxMessages(r.e.opts.Batch))
	if err != nil {
		r.log.Error("webhook: pull", "err", err)
		return
	}
	go func() { <-ctx.Done(); it.Stop() }()
	for {
		m, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
			return
		}
		if err != nil {
			r.log.Debug("webhook: pull", "err", err)
			continue
		}
		if r.internal(m.Subject()) {
			_ = m.Ack()
			continue
		}
		l := r.lanes[laneIndex(laneKey(m.Subject()), len(r.lanes))]
		if l.push(ctx, m) != nil {
			return
		}
	}
}

// awaitOrphans waits one AckWait when the consumer has messages delivered
// but not acknowledged: a killed or stopped runner held them. Pulling at
// once would deliver newer events of their conversations first; once their
// AckWait has run out, JetStream hands the redeliveries out before any new
// message, so the conversation's order holds across the restart.
func (r *runner) awaitOrphans(ctx context.Context) error {
	info, err := r.cons.Info(ctx)
	if err != nil || info.NumAckPending == 0 {
		return ctx.Err()
	}
	r.log.Info("webhook: waiting for unacknowledged events of a previous run to be redelivered first",
		"events", info.NumAckPending, "wait", r.e.opts.AckWait)
	return sleep(ctx, r.e.opts.AckWait)
}

// internal reports the relay's own webhook subjects (dead letters), never
// delivered to an endpoint: a catch-all endpoint would loop on them.
func (r *runner) internal(subject string) bool {
	return strings.HasPrefix(subject, r.e.opts.Prefix+".relay.webhook.")
}

// serveLane delivers the lane's messages one by one.
func (r *runner) serveLane(ctx context.Context, l *lane) {
	for {
		m, err := l.head(ctx)
		if err != nil {
			return
		}
		if !r.deliver(ctx, m) {
			return
		}
		l.pop()
	}
}

// deliver attempts m until success, dead letter or gone. It returns false
// when the runner must stop with m unsettled (context ended, 410).
func (r *runner) deliver(ctx context.Context, m delivery) bool {
	ev := newEvent(m)
	for n := 0; ; n++ {
		if r.br.wait(ctx) != nil || r.lim.Wait(ctx) != nil {
			return false
		}
		res := post(ctx, r.e.client, &r.ep, r.sig, ev, r.e.opts.Timeout)
		if ctx.Err() != nil {
			return false
		}
		r.br.record(res.ok())
		r.observe(ev, n, res)
		switch {
		case res.ok():
			_ = m.Ack()
			return true
		case res.status == 410:
			r.gone()
			return false
		case n >= len(r.e.opts.Schedule):
			return r.deadLetter(ctx, m, ev, n+1, res)
		}
		d := retryDelay(r.e.opts.Schedule, n, r.e.opts.Jitter, res.retryAfter, r.e.opts.MaxRetryAfter)
		if sleep(ctx, d) != nil {
			return false
		}
	}
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
