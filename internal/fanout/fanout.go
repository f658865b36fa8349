package fanout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Defaults used when an Options field is zero.
const (
	DefaultPrefix        = "chatwoot"
	DefaultBufferBytes   = 64 << 20
	DefaultBufferEvents  = 1 << 20
	DefaultInFlight      = 1024
	DefaultDedupSize     = 100_000
	DefaultDedupTTL      = 10 * time.Minute
	DefaultInstantWindow = time.Second
	DefaultRetryMin      = 100 * time.Millisecond
	DefaultRetryMax      = 5 * time.Second
	DefaultMaxAttempts   = 5
)

// Sentinel errors.
var (
	ErrClosed     = errors.New("fanout: closed")
	ErrBufferFull = errors.New("fanout: buffer full")
	// ErrRejected: the event can never be published (routing failed, too
	// large for the buffer, or NATS rejected it MaxAttempts times).
	ErrRejected        = errors.New("fanout: event rejected")
	ErrInvalidPrefix   = errors.New("fanout: invalid subject prefix")
	ErrShutdownDropped = errors.New("fanout: events dropped at shutdown")
)

// Options tune a Fanout. The zero value works.
type Options struct {
	// Prefix is the first subject token(s); "" means "chatwoot".
	Prefix string
	// ForwardTokens keeps pubsub_token values in published bodies.
	ForwardTokens bool
	// ForwardSourceIDs keeps contact_inbox.source_id values in published
	// bodies.
	ForwardSourceIDs bool
	// BufferBytes bounds the events held (waiting + in flight); 0 means 64 MiB.
	BufferBytes int64
	// BufferEvents bounds the number of events held; 0 means 1 Mi.
	BufferEvents int
	// InFlight bounds unacknowledged publishes; 0 means 1024.
	InFlight int
	// DedupSize bounds the in-process dedup window; 0 means 100,000 keys,
	// negative disables in-process deduplication.
	DedupSize int
	// DedupTTL is how long a message/conversation key is remembered; 0 means 10 min.
	DedupTTL time.Duration
	// InstantWindow is how close in time copies of a typing/presence event
	// must be to count as one; 0 means 1 s.
	InstantWindow time.Duration
	// RetryMin and RetryMax bound the backoff between publish retries;
	// 0 means 100 ms and 5 s.
	RetryMin, RetryMax time.Duration
	// MaxAttempts is how often an event the stream rejects is tried before it
	// is dropped (publish_error); 0 means 5. Connection problems never count.
	MaxAttempts int
	// Published, if set, is called once an event of a subscription is in
	// NATS: from the publishing goroutine when NATS accepted it (JetStream:
	// acknowledged it). A duplicate is reported when its first copy is:
	// with it if that copy is still in flight, at once from Handle if it is
	// already in NATS. Progress recorded from it
	// (catch-up cursors) never runs ahead of what consumers can read, even
	// if the relay dies with events still buffered. Must not block.
	Published func(subID string, r Route)
	// Lost, if set, is called from Handle when a live event of a
	// subscription was dropped for lack of buffer room: it never reached
	// NATS, while later events may. Catch the subscription up, or the
	// event is lost for good. Replayed events report through Event.Done
	// instead. Must not block.
	Lost func(subID string)
	// HoldBack is how long a live event that finds the buffer full waits
	// in Handle for room before it is dropped (and reported Lost), once
	// per overflow: a burst waits, holding its cable connection's reader
	// back, while NATS catches up; an outage that outlasts HoldBack sheds
	// at once, without waiting again, until the buffer has drained to
	// half. 0: never wait (Handle never blocks).
	HoldBack time.Duration
	// Drained, if set, is called from the publishing goroutine when a
	// saturated buffer has drained to half its bounds: events are taken
	// again, so catch-ups of what was lost can run. Must not block.
	Drained func()
	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer for the relay_fanout_* metrics; nil means a private registry.
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	o.BufferBytes = orDefault(o.BufferBytes, DefaultBufferBytes)
	o.BufferEvents = orDefault(o.BufferEvents, DefaultBufferEvents)
	o.InFlight = orDefault(o.InFlight, DefaultInFlight)
	o.DedupSize = orDefault(o.DedupSize, DefaultDedupSize)
	o.DedupTTL = orDefault(o.DedupTTL, DefaultDedupTTL)
	o.InstantWindow = orDefault(o.InstantWindow, DefaultInstantWindow)
	o.RetryMin = orDefault(o.RetryMin, DefaultRetryMin)
	o.RetryMax = max(orDefault(o.RetryMax, DefaultRetryMax), o.RetryMin)
	o.MaxAttempts = orDefault(o.MaxAttempts, DefaultMaxAttempts)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	return o
}

// forwarded is what published bodies keep of the contact's credentials.
func (o Options) forwarded() secrets {
	var s secrets
	if o.ForwardTokens {
		s |= secretTokens
	}
	if o.ForwardSourceIDs {
		s |= secretSourceIDs
	}
	return s
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Fanout routes events and publishes them to NATS in order through a
// bounded buffer. Handle never blocks on NATS.
type Fanout struct {
	opts  Options
	b     builder
	pub   Publisher
	q     *queue
	dedup *window
	m     *metrics
	log   *slog.Logger

	logRouting, logBuffer, logPublish rate.Sometimes

	closing     chan struct{} // closed by Close: finish what is buffered
	abort       chan struct{} // closed when Close's context ends: stop now
	runDone     chan struct{}
	closeOnce   sync.Once
	abortOnce   sync.Once
	closers     []func() // set by Open before use
	closersOnce sync.Once
	closed      atomic.Bool
	full        atomic.Bool // the stream refuses events for lack of room
	inflightN   atomic.Int64
	shutdownN   atomic.Int64

	// core: the publisher is core NATS, so Handle may publish itself
	// (publishNow).
	core bool
	// sendMu guards what run owns; run holds it except while it waits,
	// and Handle takes it (TryLock) to publish on its own goroutine.
	sendMu sync.Mutex

	// Owned by run, guarded by sendMu.
	inflight  deque
	failed    []*item
	rewinding bool
	retryAt   time.Time
	failures  int
	drainedAt uint64 // q.overflows when Drained was last called

	// gaveUp is q.overflows+1 when a HoldBack wait ran out: the overflow
	// it counts sheds without waiting again. 0: none did.
	gaveUp atomic.Uint64

	// observers see every routed event; copied on write by AddObserver.
	observers atomic.Pointer[[]Observer]

	// pending indexes the admitted events not yet published or dropped by
	// dedup key, so a duplicate can wait for the first copy's outcome.
	pendMu  sync.Mutex
	pending map[string]*item
}

// AddObserver adds o to the packages that see every routed event (live or
// replayed, before filtering and dedup), synchronously from Handle, in the
// order they were added. Add observers before events flow: an event
// handled while o is added may miss it.
func (f *Fanout) AddObserver(o Observer) {
	for {
		old := f.observers.Load()
		var list []Observer
		if old != nil {
			list = append(list, *old...)
		}
		list = append(list, o)
		if f.observers.CompareAndSwap(old, &list) {
			return
		}
	}
}

// New starts a Fanout publishing through pub.
func New(pub Publisher, opts Options) (*Fanout, error) {
	opts = opts.withDefaults()
	if !validPrefix(opts.Prefix) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidPrefix, opts.Prefix)
	}
	f := &Fanout{
		opts:    opts,
		b:       builder{prefix: opts.Prefix, forward: opts.forwarded(), instant: opts.InstantWindow},
		pub:     pub,
		q:       newQueue(opts.BufferBytes, opts.BufferEvents),
		dedup:   newWindow(opts.DedupSize),
		log:     opts.Logger,
		closing: make(chan struct{}),
		abort:   make(chan struct{}),
		runDone: make(chan struct{}),
		pending: make(map[string]*item),
	}
	_, f.core = pub.(*Core)
	f.logRouting = rate.Sometimes{First: 5, Interval: 10 * time.Second}
	f.logBuffer = rate.Sometimes{First: 5, Interval: 10 * time.Second}
	f.logPublish = rate.Sometimes{First: 5, Interval: 10 * time.Second}
	m, err := newMetrics(opts.Registerer, f)
	if err != nil {
		return nil, fmt.Errorf("fanout: metrics: %w", err)
	}
	f.m = m
	go f.run()
	return f, nil
}

// Handle routes, filters, deduplicates and buffers one event. It is called
// from cable delivery goroutines: it never blocks on NATS beyond
// Options.HoldBack, once per overflow, and events of one subscription are
// published in the order Handle was called.
func (f *Fanout) Handle(ev Event) {
	if ev.ReceivedAt.IsZero() {
		ev.ReceivedAt = time.Now()
	}
	if f.q.shedding.Load() && (ev.Replayed || !f.holdBack()) {
		// The buffer overflowed and has not drained to half yet: drop at
		// once, without building the event, which would only spend the
		// CPU the sender needs to drain. Lost and Done get the
		// subscription caught up.
		f.shed(&ev)
		return
	}
	it, r, err := f.b.build(&ev)
	if err != nil {
		f.rejected(ev.SubID, err)
		finish(ev.Done, fmt.Errorf("%w: %w", ErrRejected, err))
		return
	}
	if ev.Sub != nil && ev.Sub.Observe(&r, ev.ReceivedAt) {
		ev.Sub.Owner.Learned(ev.Sub)
	}
	if obs := f.observers.Load(); obs != nil {
		for _, o := range *obs {
			o.Routed(ev.SubID, r)
		}
	}
	if r.Private && !ev.Feed {
		f.m.dropped[dropFiltered].Inc()
		finish(ev.Done, nil)
		return
	}
	key, now := r.DedupKey, time.Now()
	f.pendMu.Lock()
	if !f.dedup.admit(key, now.UnixNano(), f.ttl(r.Kind)) {
		f.m.dropped[dropDuplicate].Inc()
		if orig := f.pending[key]; orig != nil {
			// The first copy is still on its way to NATS: this one is
			// settled with it (see waiter).
			orig.waiters = append(orig.waiters, waiter{sub: ev.Sub, subID: ev.SubID, route: r, done: ev.Done, live: !ev.Replayed})
			f.pendMu.Unlock()
			return
		}
		f.pendMu.Unlock()
		f.published(ev.Sub, ev.SubID, r)
		finish(ev.Done, nil)
		return
	}
	it.key, it.done = key, ev.Done
	if key != "" {
		f.pending[key] = it
	}
	f.pendMu.Unlock()
	it.borrowed = ev.Borrowed
	if f.opts.Published != nil || ev.Sub != nil {
		it.sub, it.subID, it.route = ev.Sub, ev.SubID, r
	}
	it.enq = now
	if err := f.enqueue(it, ev.SubID, !ev.Replayed); errors.Is(err, ErrBufferFull) && !ev.Replayed {
		f.lost(ev.Sub, ev.SubID)
	}
}

// settle takes it out of the in-flight index and gives its outcome (nil:
// published) to the duplicates that waited for it. Refused for lack of room
// (ErrBufferFull), live waiters are reported through Lost, as it is: a
// catch-up can bring it back, while a rejected event it cannot.
func (f *Fanout) settle(it *item, outcome error) {
	if it.key == "" {
		return
	}
	f.pendMu.Lock()
	if f.pending[it.key] == it {
		delete(f.pending, it.key)
	}
	ws := it.waiters
	it.waiters = nil
	f.pendMu.Unlock()
	for _, w := range ws {
		switch {
		case outcome == nil:
			f.published(w.sub, w.subID, w.route)
		case errors.Is(outcome, ErrBufferFull) && w.live:
			f.lost(w.sub, w.subID)
		}
		finish(w.done, outcome)
	}
}

// shed drops an event while the buffer is saturated.
func (f *Fanout) shed(ev *Event) {
	f.m.dropped[dropBufferFull].Inc()
	f.logBuffer.Do(func() {
		f.log.Warn("fanout: event dropped", "sub", ev.SubID, "reason", dropNames[dropBufferFull])
	})
	finish(ev.Done, ErrBufferFull)
	if !ev.Replayed {
		f.lost(ev.Sub, ev.SubID)
	}
}

// published reports an event in NATS to the record's owner and to
// Options.Published.
func (f *Fanout) published(s *Sub, id string, r Route) {
	if s != nil {
		s.Owner.Published(s, r)
	}
	if f.opts.Published != nil {
		f.opts.Published(id, r)
	}
}

// lost reports a live event dropped for lack of room to the record's owner
// and to Options.Lost.
func (f *Fanout) lost(s *Sub, id string) {
	if s != nil {
		s.Owner.Lost(s)
	}
	if f.opts.Lost != nil {
		f.opts.Lost(id)
	}
}

func finish(done func(error), outcome error) {
	if done != nil {
		done(outcome)
	}
}

func (f *Fanout) ttl(k Kind) int64 {
	if k.instant() {
		return int64(f.opts.InstantWindow)
	}
	return int64(f.opts.DedupTTL)
}

func (f *Fanout) rejected(subID string, err error) {
	reason := dropRouting
	if errors.Is(err, errNotObject) || errors.Is(err, errSyntax) || errors.Is(err, ErrNoEvent) {
		reason = dropInvalid
	}
	f.m.dropped[reason].Inc()
	f.logRouting.Do(func() {
		f.log.Warn("fanout: event dropped", "sub", subID, "reason", dropNames[reason], "err", err)
	})
}

// enqueue buffers it or drops it with a counted reason.
func (f *Fanout) enqueue(it *item, subID string, live bool) error {
	if f.publishNow(it) {
		return nil
	}
	if it.borrowed {
		it.msg.Data, it.borrowed = bytes.Clone(it.msg.Data), false
	}
	res := f.q.push(it)
	if res == pushFull && live && f.holdBack() {
		res = f.q.push(it)
	}
	if res == pushed {
		return nil
	}
	f.dedup.forget(it.key)
	reason, err := dropBufferFull, ErrBufferFull
	switch res {
	case pushTooLarge:
		reason, err = dropTooLarge, fmt.Errorf("%w: larger than the whole buffer", ErrRejected)
	case pushClosed:
		reason, err = dropShutdown, ErrClosed
	}
	it.finish(err)
	f.settle(it, err)
	f.m.dropped[reason].Inc()
	f.logBuffer.Do(func() {
		f.log.Warn("fanout: event dropped", "sub", subID, "reason", dropNames[reason])
	})
	return err
}

// holdBack waits up to Options.HoldBack for the sender to make room (the
// buffer below seven eighths), unless a wait already ran out during this
// overflow. It reports whether there is room now.
func (f *Fanout) holdBack() bool {
	d := f.opts.HoldBack
	episode := f.q.overflows.Load() + 1
	if d <= 0 || f.gaveUp.Load() == episode {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := f.q.waitFits(ctx); err != nil {
		f.gaveUp.Store(episode)
		return false
	}
	f.m.heldBack.Inc()
	return true
}

// WaitRoom returns once the buffer holds at most half of its bounds and is
// not shedding, so that a batch handed to Handle now is not dropped for
// lack of room and leaves room for live events: catch-up waits on it
// before each batch of replays. It returns ErrClosed after Close, or ctx's
// error.
func (f *Fanout) WaitRoom(ctx context.Context) error { return f.q.waitRoom(ctx) }

// Seen reports whether an event with this dedup key was accepted recently
// (and not dropped since), e.g. to skip a replay before building it.
func (f *Fanout) Seen(dedupKey string) bool {
	return f.dedup.seen(dedupKey, time.Now().UnixNano())
}

// Ready reports whether events flow: NATS (and the stream) usable and with
// room, the buffer not saturated, and the Fanout not closed.
func (f *Fanout) Ready() bool {
	return !f.closed.Load() && f.pub.Connected() && !f.full.Load() && !f.q.isSaturated()
}

// Lifecycle event names: the subject is <prefix>.relay.<name>.
const (
	SubscriptionConfirmed = "subscription.confirmed"
	SubscriptionLost      = "subscription.lost"
	SubscriptionInvalid   = "subscription.invalid"
	SubscriptionRemoved   = "subscription.removed"
	CatchupDone           = "catchup.done"
)

// LifecycleEvent is the JSON body of a relay lifecycle event. It names the
// subscription by id; it has no place for a token.
type LifecycleEvent struct {
	Event          string    `json:"event"` // e.g. SubscriptionConfirmed
	SubscriptionID string    `json:"subscription_id"`
	At             time.Time `json:"at"`
	Reason         string    `json:"reason,omitempty"`
	AccountID      string    `json:"account_id,omitempty"`
	InboxID        string    `json:"inbox_id,omitempty"`
	ContactID      string    `json:"contact_id,omitempty"`
	// Replayed and Conversations report catch-up work (CatchupDone).
	Replayed      int `json:"replayed,omitempty"`
	Conversations int `json:"conversations,omitempty"`
}

// MarshalJSON writes each event's documented fields: a CatchupDone always
// carries conversations and replayed, zeros included, so consumers need not
// tell a missing count from none; other events leave them out.
func (ev LifecycleEvent) MarshalJSON() ([]byte, error) {
	type plain LifecycleEvent // without this method
	if ev.Event != CatchupDone {
		return json.Marshal(plain(ev))
	}
	return json.Marshal(struct {
		plain
		Replayed      int `json:"replayed"` // shallower: replaces plain's
		Conversations int `json:"conversations"`
	}{plain(ev), ev.Replayed, ev.Conversations})
}

// Lifecycle buffers a lifecycle event on <prefix>.relay.<ev.Event>, in order
// with the events handled before it.
func (f *Fanout) Lifecycle(ev LifecycleEvent) error {
	if !validEvent(ev.Event) {
		return fmt.Errorf("%w: lifecycle event name", ErrRouting)
	}
	if ev.SubscriptionID == "" || !headerSafe(ev.SubscriptionID) {
		return &RoutingError{Field: "subscription id"}
	}
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("fanout: lifecycle body: %w", err)
	}
	it := &item{kind: KindLifecycle}
	it.msg.Subject = f.opts.Prefix + ".relay." + ev.Event
	it.msg.Data = body
	at := ev.At.UTC()
	it.hv[hMsgID] = "l:" + ev.Event + ":" + ev.SubscriptionID + ":" + strconv.FormatInt(at.UnixNano(), 10)
	it.hv[hSubscription] = ev.SubscriptionID
	it.hv[hReceivedAt] = at.Format(receivedAtLayout)
	it.setHeaders()
	it.size = int64(len(body) + len(it.msg.Subject) + itemOverhead)
	it.enq = time.Now()
	return f.enqueue(it, ev.SubscriptionID, false)
}

// Close stops accepting events and publishes what is buffered until ctx
// ends; whatever is left then is dropped (counted as shutdown) and reported
// as ErrShutdownDropped. Connections opened by Open are closed afterwards.
func (f *Fanout) Close(ctx context.Context) error {
	f.closeOnce.Do(func() {
		f.closed.Store(true)
		f.q.close()
		close(f.closing)
	})
	var err error
	select {
	case <-f.runDone:
	case <-ctx.Done():
		err = ctx.Err()
		f.abortOnce.Do(func() { close(f.abort) })
		<-f.runDone
	}
	f.closersOnce.Do(func() {
		for _, c := range f.closers {
			c()
		}
	})
	if n := f.shutdownN.Load(); n > 0 {
		err = errors.Join(fmt.Errorf("%w: %d", ErrShutdownDropped, n), err)
	}
	return err
}
