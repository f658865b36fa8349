package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Publisher is what Fanout needs from NATS. Core and JetStream implement it;
// tests use fakes.
type Publisher interface {
	// Publish hands msg to NATS without blocking for long. The Ack resolves
	// when NATS has accepted (JetStream: stored) the message; core NATS
	// resolves it at once.
	Publish(msg *nats.Msg) (Ack, error)
	// Connected reports whether Publish can currently succeed.
	Connected() bool
	// Changed returns a channel that is closed at the next change of
	// Connected (or other state worth a retry).
	Changed() <-chan struct{}
}

// Ack is the outcome of one publish; jetstream.PubAckFuture implements it.
// Exactly one of the channels delivers (or is closed).
type Ack interface {
	Ok() <-chan *jetstream.PubAck
	Err() <-chan error
}

// ErrStreamNotReady is returned by JetStream.Publish until the stream has
// been created or updated on the current connection.
var ErrStreamNotReady = errors.New("fanout: JetStream stream not ready")

// sentAck is the Ack of a core publish: resolved successfully at once.
type sentAck struct{}

var closedOK = func() chan *jetstream.PubAck {
	ch := make(chan *jetstream.PubAck)
	close(ch)
	return ch
}()

func (sentAck) Ok() <-chan *jetstream.PubAck { return closedOK }
func (sentAck) Err() <-chan error            { return nil }

// notifier is a broadcast "something changed" signal.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// connWatch follows a connection's status and notifies on each change.
type connWatch struct {
	nc       *nats.Conn
	n        *notifier
	onStatus func(nats.Status)
	ch       chan nats.Status
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

func watchConn(nc *nats.Conn, n *notifier, onStatus func(nats.Status)) *connWatch {
	w := &connWatch{nc: nc, n: n, onStatus: onStatus, ch: nc.StatusChanged(),
		stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

func (w *connWatch) loop() {
	defer close(w.done)
	for {
		select {
		case st, ok := <-w.ch:
			if !ok {
				return
			}
			// nats.go announces a status before storing it; Status() takes
			// the connection lock, so once it returns the change is visible.
			_ = w.nc.Status()
			if w.onStatus != nil {
				w.onStatus(st)
			}
			w.n.notify()
			if st == nats.CLOSED {
				return
			}
		case <-w.stop:
			return
		}
	}
}

func (w *connWatch) close() {
	w.once.Do(func() {
		close(w.stop)
		<-w.done
		w.nc.RemoveStatusListener(w.ch)
	})
}

// Core publishes with core NATS: at-most-once to the subscribers connected
// at that moment.
type Core struct {
	nc    *nats.Conn
	n     notifier
	watch *connWatch
}

var _ Publisher = (*Core)(nil)

// NewCore returns a core-NATS publisher on nc.
func NewCore(nc *nats.Conn) *Core {
	c := &Core{nc: nc}
	c.watch = watchConn(nc, &c.n, nil)
	return c
}

// Publish writes msg to the connection.
func (c *Core) Publish(msg *nats.Msg) (Ack, error) {
	if err := c.nc.PublishMsg(msg); err != nil {
		return nil, err
	}
	return sentAck{}, nil
}

// Connected reports whether the connection is up.
func (c *Core) Connected() bool { return c.nc.IsConnected() }

// Changed is closed at the next connection status change.
func (c *Core) Changed() <-chan struct{} { return c.n.changed() }

// Close stops following the connection; it does not close nc.
func (c *Core) Close() { c.watch.close() }

// Stream defaults.
const (
	DefaultStreamName     = "CHATWOOT"
	DefaultStreamMaxAge   = 7 * 24 * time.Hour
	DefaultStreamMaxBytes = 1 << 30
	DefaultDuplicates     = 2 * time.Minute
	DefaultAckTimeout     = 5 * time.Second
)

// JetStreamConfig describes the stream and the asynchronous publisher.
type JetStreamConfig struct {
	// Name of the stream; "" means CHATWOOT.
	Name string
	// Subjects of the stream; Open sets <prefix>.>. Required for NewJetStream.
	Subjects []string
	// MaxAge of stored events; 0 means 7 days, negative means unlimited.
	MaxAge time.Duration
	// MaxBytes of the stream; 0 means 1 GiB, negative means unlimited.
	// The oldest events are discarded first.
	MaxBytes int64
	// Duplicates is JetStream's Nats-Msg-Id window; 0 means 2 minutes.
	Duplicates time.Duration
	// Replicas of the stream; 0 means 1.
	Replicas int
	// Memory selects memory storage instead of files.
	Memory bool
	// AckTimeout bounds the wait for one publish acknowledgement; 0 means 5 s.
	AckTimeout time.Duration
	// MaxPending bounds unacknowledged publishes in nats.go; 0 means 1024.
	// Fanout keeps its own window (Options.InFlight) at or below it.
	MaxPending int
}

func (c JetStreamConfig) withDefaults() JetStreamConfig {
	if c.Name == "" {
		c.Name = DefaultStreamName
	}
	c.MaxAge = defaultDuration(c.MaxAge, DefaultStreamMaxAge)
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultStreamMaxBytes
	} else if c.MaxBytes < 0 {
		c.MaxBytes = -1
	}
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultInFlight
	}
	return c
}

func defaultDuration(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0 // unlimited
	}
	return d
}

func (c JetStreamConfig) stream() jetstream.StreamConfig {
	storage := jetstream.FileStorage
	if c.Memory {
		storage = jetstream.MemoryStorage
	}
	return jetstream.StreamConfig{
		Name:       c.Name,
		Subjects:   c.Subjects,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxAge:     c.MaxAge,
		MaxBytes:   c.MaxBytes,
		Duplicates: c.Duplicates,
		Replicas:   c.Replicas,
		Storage:    storage,
	}
}

// JetStream publishes asynchronously into a stream it creates or updates
// on every (re)connect. It is Connected only once the stream is in place.
type JetStream struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	cfg   JetStreamConfig
	log   *slog.Logger
	ready atomic.Bool // stream ensured on the current connection
	n     notifier
	watch *connWatch
	kick  chan struct{}
	ctx   context.Context
	stop  context.CancelFunc
	done  chan struct{}
}

var _ Publisher = (*JetStream)(nil)

// NewJetStream returns a JetStream publisher on nc and starts ensuring the
// stream in the background (NATS may still be unreachable).
func NewJetStream(nc *nats.Conn, cfg JetStreamConfig, logger *slog.Logger) (*JetStream, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Subjects) == 0 {
		return nil, errors.New("fanout: JetStream stream needs subjects")
	}
	if cfg.MaxAge > 0 && cfg.Duplicates > cfg.MaxAge {
		return nil, fmt.Errorf("fanout: duplicate window %s longer than stream max age %s", cfg.Duplicates, cfg.MaxAge)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &JetStream{nc: nc, cfg: cfg, log: logger.With("stream", cfg.Name),
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
		jetstream.WithPublishAsyncErrHandler(p.asyncErr))
	if err != nil {
		return nil, fmt.Errorf("fanout: JetStream: %w", err)
	}
	p.js = js
	p.ctx, p.stop = context.WithCancel(context.Background())
	p.watch = watchConn(nc, &p.n, p.onStatus)
	go p.ensureLoop()
	p.wake()
	return p, nil
}

// Publish sends msg asynchronously; the Ack resolves with the stream's answer.
func (p *JetStream) Publish(msg *nats.Msg) (Ack, error) {
	if !p.ready.Load() {
		return nil, ErrStreamNotReady
	}
	f, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Connected reports whether the connection is up and the stream ensured.
func (p *JetStream) Connected() bool { return p.ready.Load() && p.nc.IsConnected() }

// Changed is closed at the next connection or stream state change.
func (p *JetStream) Changed() <-chan struct{} { return p.n.changed() }

// Close stops the background work; it does not close nc.
func (p *JetStream) Close() {
	p.stop()
	<-p.done
	p.watch.close()
}

func (p *JetStream) onStatus(st nats.Status) {
	p.ready.Store(false)
	if st == nats.CONNECTED {
		p.wake()
	}
}

// asyncErr runs for every failed asynchronous publish. "No response from
// stream" means the stream is gone or JetStream is not up yet: ensure again.
func (p *JetStream) asyncErr(_ jetstream.JetStream, _ *nats.Msg, err error) {
	if errors.Is(err, jetstream.ErrNoStreamResponse) && p.ready.CompareAndSwap(true, false) {
		if p.nc.IsConnected() {
			p.log.Error("fanout: JetStream stream not answering (deleted?); creating it again, events held meanwhile", "err", err)
		}
		p.n.notify()
		p.wake()
	}
}

func (p *JetStream) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// ensureLoop creates or updates the stream whenever the connection is up
// and the stream is not known to be in place, retrying with backoff.
func (p *JetStream) ensureLoop() {
	defer close(p.done)
	var retry <-chan time.Time
	failures := 0
	for {
		select {
		case <-p.kick:
		case <-retry:
		case <-p.ctx.Done():
			return
		}
		retry = nil
		if p.ready.Load() || !p.nc.IsConnected() {
			continue
		}
		if err := p.ensure(); err != nil {
			failures++
			p.log.Warn("fanout: cannot create or update JetStream stream", "err", err, "attempt", failures)
			retry = time.After(backoff(failures, time.Second, 30*time.Second))
			continue
		}
		p.log.Info("fanout: JetStream stream ready")
		failures = 0
		p.ready.Store(true)
		p.n.notify()
	}
}

func (p *JetStream) ensure() error {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.AckTimeout)
	defer cancel()
	_, err := p.js.CreateOrUpdateStream(ctx, p.cfg.stream())
	if err == nil {
		return nil
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// The stream exists with settings that cannot be changed in place
		// (storage type, for example): publish into it as it is.
		if _, serr := p.js.Stream(ctx, p.cfg.Name); serr == nil {
			p.log.Warn("fanout: JetStream stream not updated, using it as is", "err", err)
			return nil
		}
	}
	return err
}

// backoff returns lo * 2^(attempt-1), capped at hi.
func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}
