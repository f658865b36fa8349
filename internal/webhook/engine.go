package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults used when an Options field is zero.
const (
	DefaultTimeout          = 15 * time.Second
	DefaultJitter           = 0.2
	DefaultMaxRetryAfter    = time.Hour
	DefaultConcurrency      = 16
	DefaultLaneDepth        = 64
	DefaultBatch            = 256
	DefaultAckWait          = 30 * time.Second
	DefaultPinnedTTL        = 30 * time.Second
	DefaultBreakerThreshold = 10
	DefaultBreakerCooldown  = time.Minute
	DefaultRecent           = 100
	DefaultBacklogEvery     = 15 * time.Second

	// priorityGroup is the pinned-client group every replica pulls in:
	// one replica at a time delivers an endpoint, which keeps the order
	// per conversation; another takes over when it stops pulling.
	priorityGroup = "relay"
	// ConsumerPrefix starts the durable consumer name of every endpoint.
	ConsumerPrefix = "relay-webhook-"
)

// Options configure the Engine.
type Options struct {
	// Stream is the relay's JetStream stream; required.
	Stream string
	// Prefix is the subject prefix; required.
	Prefix string
	// Schedule is the wait before each retry; nil means DefaultSchedule.
	// An event is dead-lettered after len(Schedule)+1 failed attempts.
	Schedule []time.Duration
	// Jitter spreads each wait by ±Jitter of it; 0 means 0.2, negative none.
	Jitter float64
	// MaxRetryAfter caps a receiver's Retry-After; 0 means 1 h.
	MaxRetryAfter time.Duration
	// Timeout bounds one attempt; 0 means 15 s.
	Timeout time.Duration
	// Concurrency is the default number of conversations delivered in
	// parallel per endpoint (workers); 0 means 16.
	Concurrency int
	// LaneDepth is each worker's share of the events an endpoint holds
	// unacknowledged (MaxAckPending = Concurrency×LaneDepth + Batch);
	// 0 means 64.
	LaneDepth int
	// Batch is the pull batch size; 0 means 256.
	Batch int
	// AckWait is the consumer's redelivery timeout (queued events are kept
	// alive at a third of it); 0 means 30 s. It must exceed Timeout.
	AckWait time.Duration
	// PinnedTTL is how long a replica that stopped pulling keeps an
	// endpoint before another takes over; 0 means 30 s.
	PinnedTTL time.Duration
	// BreakerThreshold consecutive failed attempts open the circuit;
	// 0 means 10. BreakerCooldown is how long it stays open before one
	// probe; 0 means 1 min.
	BreakerThreshold int
	BreakerCooldown  time.Duration
	// Addresses says which resolved receiver addresses may be dialled.
	Addresses AddressPolicy
	// Recent is how many attempts per endpoint Deliveries keeps; 0 means 100.
	Recent int
	// OnGone is called (in its own goroutine) when a receiver answered 410
	// and the endpoint was disabled here; it should persist Disabled.
	OnGone func(id string)
	// Registerer receives the metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger; nil discards.
	Logger *slog.Logger

	transport http.RoundTripper // tests: replaces the guarded transport
}

func (o Options) withDefaults() Options {
	if o.Schedule == nil {
		o.Schedule = DefaultSchedule
	}
	if o.Jitter == 0 {
		o.Jitter = DefaultJitter
	}
	o.MaxRetryAfter = or(o.MaxRetryAfter, DefaultMaxRetryAfter)
	o.Timeout = or(o.Timeout, DefaultTimeout)
	o.Concurrency = or(o.Concurrency, DefaultConcurrency)
	o.LaneDepth = or(o.LaneDepth, DefaultLaneDepth)
	o.Batch = or(o.Batch, DefaultBatch)
	o.AckWait = or(o.AckWait, DefaultAckWait)
	o.PinnedTTL = or(o.PinnedTTL, DefaultPinnedTTL)
	o.BreakerThreshold = or(o.BreakerThreshold, DefaultBreakerThreshold)
	o.BreakerCooldown = or(o.BreakerCooldown, DefaultBreakerCooldown)
	o.Recent = or(o.Recent, DefaultRecent)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Engine delivers events to webhook endpoints from JetStream.
type Engine struct {
	js     jetstream.JetStream
	pub    publisher // dead letters; js outside tests
	opts   Options
	client *http.Client
	log    *slog.Logger
	m      *metrics

	mu      sync.Mutex         // guards the maps
	runners map[string]*runner // endpoints delivering here
	rings   map[string]*ring   // recent attempts, kept across restarts of a runner
	closed  bool
}

// publisher stores dead letters.
type publisher interface {
	PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// ErrOptions reports unusable engine options.
var ErrOptions = errors.New("webhook: invalid options")

// New returns an engine pulling from opts.Stream through js.
func New(js jetstream.JetStream, opts Options) (*Engine, error) {
	opts = opts.withDefaults()
	if opts.Stream == "" || opts.Prefix == "" || len(opts.Schedule) == 0 || opts.AckWait <= opts.Timeout {
		return nil, fmt.Errorf("%w: stream, prefix and a schedule are required; AckWait must exceed Timeout", ErrOptions)
	}
	e := &Engine{js: js, pub: js, opts: opts, log: opts.Logger,
		runners: map[string]*runner{}, rings: map[string]*ring{}}
	e.m = newMetrics(opts.Registerer, e.backlog)
	e.client = newClient(opts.Addresses, maxConcurrency)
	if opts.transport != nil {
		e.client.Transport = opts.transport
	}
	return e, nil
}

// Apply makes this process deliver exactly the enabled endpoints of eps:
// it creates or updates their durable consumers, starts new ones, restarts
// changed ones and stops the others (their consumers are kept; Delete
// removes one). All endpoints are validated first; nothing changes if one
// is invalid.
func (e *Engine) Apply(ctx context.Context, eps []Endpoint) error {
	for _, ep := range eps {
		if err := ep.Validate(e.opts.Prefix); err != nil {
			return fmt.Errorf("endpoint %s: %w", ep.ID, err)
		}
	}
	want := map[string]Endpoint{}
	for _, ep := range eps {
		want[ep.ID] = ep
	}
	e.stopUnwanted(ctx, want)
	var errs []error
	for _, ep := range eps {
		if err := e.ensure(ctx, ep); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s: %w", ep.ID, err))
		}
	}
	return errors.Join(errs...)
}

// stopUnwanted stops runners that are gone, disabled or changed.
func (e *Engine) stopUnwanted(ctx context.Context, want map[string]Endpoint) {
	e.mu.Lock()
	var stop []*runner
	for id, r := range e.runners {
		if ep, ok := want[id]; !ok || ep.Disabled || !reflect.DeepEqual(ep, r.ep) {
			stop = append(stop, r)
			delete(e.runners, id)
		}
	}
	e.mu.Unlock()
	for _, r := range stop {
		e.halt(ctx, r)
	}
}

// ensure creates ep's consumer and starts its runner unless it runs.
func (e *Engine) ensure(ctx context.Context, ep Endpoint) error {
	if ep.Disabled {
		return nil
	}
	e.mu.Lock()
	_, running := e.runners[ep.ID]
	e.mu.Unlock()
	if running {
		return nil
	}
	cons, err := e.consumer(ctx, ep)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	r := newRunner(e, ep, cons)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.runners[ep.ID] != nil {
		return nil
	}
	e.runners[ep.ID] = r
	r.start()
	go e.pollBacklog(r)
	return nil
}

// consumer creates ep's consumer, starting at the current time, or
// updates the existing one, keeping where it started (a replay may
// rewind it that far, never further).
func (e *Engine) consumer(ctx context.Context, ep Endpoint) (jetstream.Consumer, error) {
	cfg := e.consumerConfig(ep)
	for range 2 {
		c, err := e.js.Consumer(ctx, e.opts.Stream, cfg.Durable)
		if err == nil {
			old := c.CachedInfo().Config
			cfg.DeliverPolicy, cfg.OptStartTime, cfg.OptStartSeq = old.DeliverPolicy, old.OptStartTime, old.OptStartSeq
			return e.js.UpdateConsumer(ctx, e.opts.Stream, cfg)
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, err
		}
		now := time.Now().UTC()
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &now
		c, err = e.js.CreateConsumer(ctx, e.opts.Stream, cfg)
		if !errors.Is(err, jetstream.ErrConsumerExists) {
			return c, err
		}
		// Another replica created it meanwhile: update that one.
	}
	return nil, jetstream.ErrConsumerExists
}

// consumerConfig is the durable pull consumer of ep: explicit acks, one
// pinned replica at a time. consumer sets where it starts.
func (e *Engine) consumerConfig(ep Endpoint) jetstream.ConsumerConfig {
	n := or(ep.Concurrency, e.opts.Concurrency)
	return jetstream.ConsumerConfig{
		Durable:        ConsumerName(ep.ID),
		Description:    "relay webhook endpoint " + ep.ID,
		FilterSubjects: ep.Subjects,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        e.opts.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  n*e.opts.LaneDepth + e.opts.Batch,
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{priorityGroup},
		PinnedTTL:      e.opts.PinnedTTL,
	}
}

// ConsumerName is the durable consumer of an endpoint.
func ConsumerName(id string) string { return ConsumerPrefix + id }

// halt stops r and releases its pin so another replica (or a restarted
// runner) takes over at once.
func (e *Engine) halt(ctx context.Context, r *runner) {
	r.stop()
	s, err := e.js.Stream(ctx, e.opts.Stream)
	if err == nil {
		err = s.UnpinConsumer(ctx, ConsumerName(r.ep.ID), priorityGroup)
	}
	if err != nil {
		e.log.Debug("webhook: unpin", "endpoint", r.ep.ID, "err", err)
	}
}

// Delete stops the endpoint here and removes its durable consumer (and so
// its backlog) for every replica.
func (e *Engine) Delete(ctx context.Context, id string) error {
	e.mu.Lock()
	r := e.runners[id]
	delete(e.runners, id)
	delete(e.rings, id)
	e.mu.Unlock()
	if r != nil {
		r.stop()
	}
	err := e.js.DeleteConsumer(ctx, e.opts.Stream, ConsumerName(id))
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil
	}
	return err
}

// disable stops a runner whose receiver answered 410.
func (e *Engine) disable(id string) {
	e.mu.Lock()
	r := e.runners[id]
	delete(e.runners, id)
	e.mu.Unlock()
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.halt(ctx, r)
	if e.opts.OnGone != nil {
		e.opts.OnGone(id)
	}
}

// restart replaces r, which lost its pin to another replica, by a fresh
// runner on the same consumer: r's events are released (redelivered
// where the pin is now) and the new runner raises its barrier if the pin
// comes back. The pin is left alone: another replica holds it.
func (e *Engine) restart(r *runner) {
	e.mu.Lock()
	if e.closed || e.runners[r.ep.ID] != r {
		e.mu.Unlock()
		return
	}
	delete(e.runners, r.ep.ID)
	e.mu.Unlock()
	r.stop()
	n := newRunner(e, r.ep, r.cons)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.runners[r.ep.ID] != nil {
		return
	}
	e.runners[r.ep.ID] = n
	n.start()
	go e.pollBacklog(n)
}

// Deliveries returns the recent attempts of an endpoint made by this
// process, newest first.
func (e *Engine) Deliveries(id string) []Attempt {
	e.mu.Lock()
	r := e.rings[id]
	e.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.recent()
}

// ring returns the recent-attempts ring of id, creating it.
func (e *Engine) ring(id string) *ring {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rings[id] == nil {
		e.rings[id] = newRing(e.opts.Recent)
	}
	return e.rings[id]
}

// Running reports whether this process delivers endpoint id.
func (e *Engine) Running(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runners[id] != nil
}

// Close stops every runner; undelivered events stay in the consumers.
func (e *Engine) Close(ctx context.Context) {
	e.mu.Lock()
	e.closed = true
	rs := e.runners
	e.runners = map[string]*runner{}
	e.mu.Unlock()
	for _, r := range rs {
		e.halt(ctx, r)
	}
	e.client.CloseIdleConnections()
}

// backlog sums the last known backlog of the local runners.
func (e *Engine) backlog() float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var n int64
	for _, r := range e.runners {
		n += r.backlog.Load()
	}
	return float64(n)
}

// pollBacklog refreshes r's backlog from its consumer until r stops.
func (e *Engine) pollBacklog(r *runner) {
	for {
		ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
		if info, err := r.cons.Info(ctx); err == nil {
			r.backlog.Store(int64(info.NumPending) + int64(info.NumAckPending))
		}
		cancel()
		if sleep(r.ctx, DefaultBacklogEvery) != nil {
			return
		}
	}
}
