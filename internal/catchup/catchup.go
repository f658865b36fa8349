package catchup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store"
)

// Defaults used when an Options field is zero.
const (
	DefaultConcurrency   = 4
	DefaultMaxAttempts   = 5
	DefaultRetryMin      = 2 * time.Second
	DefaultRetryMax      = time.Minute
	DefaultFlushInterval = 2 * time.Second
	DefaultRunTimeout    = 5 * time.Minute
	DefaultMaxPages      = 50
	DefaultStoreTimeout  = 10 * time.Second
)

// PageSize is how many messages Chatwoot's message index returns per page
// (MessageFinder). A shorter page is the conversation's first.
const PageSize = 20

// SyncMarker is the conversation id of the cursor that marks a subscription
// as caught up at least once. Chatwoot display ids start at 1, so it never
// names a real conversation.
const SyncMarker = "0"

// Sentinel errors.
var (
	// ErrOptions: a required option is missing or a value is out of range.
	ErrOptions = errors.New("catchup: invalid options")
	// errRemoved: the subscription was forgotten or deleted from the store
	// while it was being caught up.
	errRemoved = errors.New("catchup: subscription removed")
)

// Source is the part of Chatwoot's public API that catch-up reads;
// *chatwoot.Client implements it (every call goes through its shared rate
// limiter).
type Source interface {
	ListConversations(ctx context.Context, ci chatwoot.ContactInbox) ([]chatwoot.Conversation, error)
	ListMessages(ctx context.Context, ci chatwoot.ContactInbox, conversationID, before int64) ([]chatwoot.Message, error)
}

// Cursors is the part of the store that keeps catch-up progress.
type Cursors interface {
	ListCursors(ctx context.Context, subscriptionID string) ([]store.Cursor, error)
	PutCursor(ctx context.Context, c store.Cursor) (store.Cursor, error)
}

// Sink receives replayed events and the catchup.done lifecycle event;
// *fanout.Fanout implements it.
type Sink interface {
	Handle(ev fanout.Event)
	Lifecycle(ev fanout.LifecycleEvent) error
	// WaitRoom returns once the sink has room for a batch of replays
	// beside the live events (fanout: its buffer at most half full), or
	// with ctx's error.
	WaitRoom(ctx context.Context) error
}

// Options configure a Catchup. Source, Cursors and Sink are required.
type Options struct {
	Source  Source
	Cursors Cursors
	Sink    Sink

	// Concurrency is how many subscriptions are caught up at once; 0 means 4.
	Concurrency int
	// MaxAttempts bounds the attempts of one catch-up that fails on a
	// transient error (Chatwoot unreachable, 5xx, store error); 0 means 5.
	MaxAttempts int
	// RetryMin and RetryMax bound the exponential backoff (with jitter)
	// between attempts; 0 means 2 s and 1 min.
	RetryMin, RetryMax time.Duration
	// FlushInterval is how often cursors moved by live events are written
	// to the store; 0 means 2 s.
	FlushInterval time.Duration
	// RunTimeout bounds one attempt; 0 means 5 min.
	RunTimeout time.Duration
	// MaxPages bounds the message pages read per conversation and attempt
	// (PageSize messages each); 0 means 50. Older missed messages beyond it
	// are not replayed (counted as truncated).
	MaxPages int
	// StoreTimeout bounds each store call of the cursor flush; 0 means 10 s.
	StoreTimeout time.Duration

	// OnGone, if set, is called (from a worker goroutine) with the
	// subscription id when Chatwoot answers 404 for the contact: its
	// contact inbox no longer exists.
	OnGone func(subscriptionID string)

	// Logger; nil discards.
	Logger *slog.Logger
	// Registerer for the relay_catchup_* metrics; nil means a private registry.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() (Options, error) {
	err := o.validate()
	o.Concurrency = orDefault(o.Concurrency, DefaultConcurrency)
	o.MaxAttempts = orDefault(o.MaxAttempts, DefaultMaxAttempts)
	o.MaxPages = orDefault(o.MaxPages, DefaultMaxPages)
	o.RetryMin = orDefault(o.RetryMin, DefaultRetryMin)
	o.RetryMax = max(orDefault(o.RetryMax, DefaultRetryMax), o.RetryMin)
	o.FlushInterval = orDefault(o.FlushInterval, DefaultFlushInterval)
	o.RunTimeout = orDefault(o.RunTimeout, DefaultRunTimeout)
	o.StoreTimeout = orDefault(o.StoreTimeout, DefaultStoreTimeout)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, err
}

// validate reports every missing or negative option at once.
func (o Options) validate() error {
	var errs []error
	if o.Source == nil {
		errs = append(errs, fmt.Errorf("%w: Source is required", ErrOptions))
	}
	if o.Cursors == nil {
		errs = append(errs, fmt.Errorf("%w: Cursors is required", ErrOptions))
	}
	if o.Sink == nil {
		errs = append(errs, fmt.Errorf("%w: Sink is required", ErrOptions))
	}
	for _, v := range []struct {
		name string
		neg  bool
	}{
		{"Concurrency", o.Concurrency < 0}, {"MaxAttempts", o.MaxAttempts < 0}, {"MaxPages", o.MaxPages < 0},
		{"RetryMin", o.RetryMin < 0}, {"RetryMax", o.RetryMax < 0}, {"FlushInterval", o.FlushInterval < 0},
		{"RunTimeout", o.RunTimeout < 0}, {"StoreTimeout", o.StoreTimeout < 0},
	} {
		if v.neg {
			errs = append(errs, fmt.Errorf("%w: %s must not be negative", ErrOptions, v.name))
		}
	}
	return errors.Join(errs...)
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Catchup fills the gaps of at-most-once ActionCable delivery from
// Chatwoot's public API. Its methods are safe for concurrent use.
type Catchup struct {
	opts Options
	log  *slog.Logger
	m    *metrics

	ctx    context.Context // canceled by Close: aborts running attempts
	cancel context.CancelFunc
	wake   chan struct{} // capacity 1: a job was queued
	done   chan struct{} // closed by Close
	wg     sync.WaitGroup

	startOnce sync.Once
	closeOnce sync.Once
	flushMu   sync.Mutex // one flush at a time

	// dirty holds the States with a cursor to write, each once (queued);
	// a live event takes dirtyMu only to add its State.
	dirtyMu sync.Mutex
	dirty   []dirtyState

	// Guarded by mu, which live events never take: the jobs and their
	// scheduling. Lock order: mu, then a State's mu, then dirtyMu.
	mu      sync.Mutex
	closed  bool
	started bool
	queue   jobQueue
	seq     uint64
	running int
	waiting map[*job]struct{} // jobs in backoff
}

// New returns a Catchup; call Start to run it.
func New(opts Options) (*Catchup, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Catchup{
		opts: opts, log: opts.Logger, m: m,
		ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		waiting: make(map[*job]struct{}),
	}, nil
}

// Start starts the workers and the cursor flusher. Triggers received before
// Start wait in the queue.
func (c *Catchup) Start() {
	c.startOnce.Do(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			return
		}
		c.started = true
		c.wg.Add(c.opts.Concurrency + 1)
		for range c.opts.Concurrency {
			go c.worker()
		}
		go c.flushLoop()
	})
}

// Close stops taking work, aborts running catch-ups (what they finished is
// kept; the rest runs again after the next confirm) and writes the cursors
// moved by live events. It returns ctx's error if ctx ends first.
func (c *Catchup) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.stopTimersLocked()
		c.mu.Unlock()
		c.cancel()
		close(c.done)
	})
	stopped := make(chan struct{})
	go func() { c.wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.flush(ctx)
}

func (c *Catchup) now() time.Time { return c.opts.Now() }
