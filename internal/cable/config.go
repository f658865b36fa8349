package cable

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/relayhq/relay/internal/jsonscan"
)

// Config configures a Pool. Zero values take the defaults named on each
// field, which follow Chatwoot's behaviour (DESIGN.md "Cable behaviour").
type Config[M any] struct {
	// URL is the websocket endpoint, ws:// or wss://, e.g. wss://chat.example.com/cable.
	// CableURL derives it from a Chatwoot base URL.
	URL string
	// Origin is sent as the Origin header. Empty means the origin of URL
	// (http(s)://host), which installations with Rails' forgery protection
	// re-enabled require. NoOrigin sends none.
	Origin   string
	NoOrigin bool
	// Header holds extra handshake headers.
	Header http.Header
	// TLSConfig is used for wss://; nil means system roots.
	TLSConfig *tls.Config

	// PerConn is the number of subscriptions placed on one connection. Default 200.
	PerConn int
	// SubscribeRate and SubscribeBurst pace subscribe commands across the
	// whole process: Chatwoot sees at most SubscribeRate·t + SubscribeBurst
	// subscribes in any t. The pool paces at paceMargin below the rate so
	// that network and scheduling jitter cannot push what Chatwoot sees
	// over it. Defaults 50/s and 5.
	SubscribeRate  float64
	SubscribeBurst int
	// SharedPace, when set, is a deployment-wide pace every subscribe also
	// waits for after the process's own (replicas sharing Redis).
	SharedPace interface {
		Wait(ctx context.Context) error
	}
	// StaleAfter is how long a connection may go without any frame before it
	// is reconnected. Chatwoot pings every 3 s. Default 6 s.
	StaleAfter time.Duration
	// BackoffMin and BackoffMax bound reconnect and retry backoff. Defaults 1 s and 30 s.
	BackoffMin, BackoffMax time.Duration
	// ConfirmTimeout is how long a subscribe may go unconfirmed before it is
	// unsubscribed and retried. Chatwoot never answers a subscribe for an
	// unknown token. Default 10 s.
	ConfirmTimeout time.Duration
	// VerifyAfter is the number of consecutive confirm timeouts after which
	// Verifier is asked whether the subscription is still valid. Default 3.
	VerifyAfter int
	// ParkAfter is the number of consecutive confirm timeouts after which
	// a subscription is parked (StateParked), provided Chatwoot confirmed
	// some subscription since the pool started: one that never did may be
	// down, and its subscriptions keep retrying at the usual backoff.
	// Default 5.
	ParkAfter int
	// ParkInterval is how long a parked subscription waits between tries
	// (with jitter, half to all of it). Default 10 min.
	ParkInterval time.Duration
	// PresenceInterval, when positive, sends RoomChannel's update_presence for
	// every confirmed subscription at this interval (first one jittered).
	// Zero (default) sends none.
	PresenceInterval time.Duration

	// ReadLimit refuses larger frames. Default 1 MiB.
	ReadLimit int64
	// WriteTimeout bounds each frame write. Default 10 s.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds dialing and the websocket handshake. Default 10 s.
	HandshakeTimeout time.Duration
	// SendQueue bounds the commands waiting for a connection's writer. Default 256.
	SendQueue int
	// DeliveryQueue bounds, per connection, the broadcasts waiting for
	// Handler. When it is full the broadcast is dropped (reason queue_full)
	// and the subscription reported with ChangeGap. Default 8192. Unused
	// with Direct.
	DeliveryQueue int

	// Handler receives every broadcast, in order per subscription, from one
	// goroutine per connection. It should be quick; see DeliveryQueue.
	Handler func(Delivery[M])
	// Fields names the values of a broadcast's message the reader captures
	// while it decodes the frame, for Handler (Delivery.Fields): one pass
	// over the frame serves both. Nil captures nothing.
	Fields *jsonscan.Table
	// Direct calls Handler on the connection's reader itself, without the
	// delivery queue and its goroutine: no hand-off (and no wake-up) per
	// broadcast. For a Handler that never blocks longer than a bounded
	// moment (well below StaleAfter), such as the fan-out's Deliver.
	Direct bool
	// OnState receives subscription state changes. It is called from several
	// goroutines and must not block for long.
	OnState func(StateChange[M])
	// Verifier is asked after VerifyAfter confirm timeouts in a row. Nil
	// means keep retrying forever.
	Verifier Verifier[M]

	Logger     *slog.Logger
	Registerer prometheus.Registerer

	// NetDialContext replaces the network dialer (tests use an in-memory network).
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Jitter returns a number in [0,1) for backoff jitter. Default math/rand/v2.
	Jitter func() float64
}

// Defaults.
const (
	DefaultPerConn          = 200
	DefaultSubscribeRate    = 50
	DefaultSubscribeBurst   = 5
	DefaultStaleAfter       = 6 * time.Second
	DefaultBackoffMin       = time.Second
	DefaultBackoffMax       = 30 * time.Second
	DefaultConfirmTimeout   = 10 * time.Second
	DefaultVerifyAfter      = 3
	DefaultParkAfter        = 5
	DefaultParkInterval     = 10 * time.Minute
	DefaultReadLimit        = 1 << 20
	DefaultWriteTimeout     = 10 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultSendQueue        = 256
	DefaultDeliveryQueue    = 8192
)

func (c *Config[M]) setDefaults() {
	setDefault(&c.PerConn, DefaultPerConn)
	setDefault(&c.SubscribeRate, DefaultSubscribeRate)
	setDefault(&c.SubscribeBurst, DefaultSubscribeBurst)
	setDefault(&c.StaleAfter, DefaultStaleAfter)
	setDefault(&c.BackoffMin, DefaultBackoffMin)
	setDefault(&c.BackoffMax, DefaultBackoffMax)
	setDefault(&c.ConfirmTimeout, DefaultConfirmTimeout)
	setDefault(&c.VerifyAfter, DefaultVerifyAfter)
	setDefault(&c.ParkAfter, DefaultParkAfter)
	setDefault(&c.ParkInterval, DefaultParkInterval)
	setDefault(&c.ReadLimit, DefaultReadLimit)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&c.SendQueue, DefaultSendQueue)
	setDefault(&c.DeliveryQueue, DefaultDeliveryQueue)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Jitter == nil {
		c.Jitter = rand.Float64
	}
	if c.Handler == nil {
		c.Handler = func(Delivery[M]) {}
	}
	if c.OnState == nil {
		c.OnState = func(StateChange[M]) {}
	}
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func (c *Config[M]) validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("cable: URL: %w", err))
	case u.Scheme != "ws" && u.Scheme != "wss":
		errs = append(errs, fmt.Errorf("cable: URL scheme %q: want ws or wss", u.Scheme))
	case u.Host == "":
		errs = append(errs, errors.New("cable: URL has no host"))
	}
	if c.PerConn < 1 || c.SubscribeRate <= 0 || c.SubscribeBurst < 1 || c.VerifyAfter < 1 || c.ParkAfter < 1 {
		errs = append(errs, errors.New("cable: PerConn, SubscribeRate, SubscribeBurst, VerifyAfter and ParkAfter must be positive"))
	}
	if c.BackoffMin > c.BackoffMax {
		errs = append(errs, fmt.Errorf("cable: BackoffMin %v exceeds BackoffMax %v", c.BackoffMin, c.BackoffMax))
	}
	if c.StaleAfter < 0 || c.ConfirmTimeout < 0 || c.PresenceInterval < 0 || c.ParkInterval < 0 {
		errs = append(errs, errors.New("cable: durations must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *Config[M]) origin() string {
	if c.NoOrigin {
		return ""
	}
	if c.Origin != "" {
		return c.Origin
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return ""
	}
	scheme := "http"
	if u.Scheme == "wss" {
		scheme = "https"
	}
	return scheme + "://" + u.Host
}

// CableURL derives the /cable websocket URL from a Chatwoot base URL
// (http→ws, https→wss).
func CableURL(chatwootURL string) (string, error) {
	u, err := url.Parse(chatwootURL)
	if err != nil {
		return "", fmt.Errorf("cable: chatwoot URL: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("cable: chatwoot URL scheme %q: want http or https", u.Scheme)
	}
	if u.Host == "" {
		return "", errors.New("cable: chatwoot URL has no host")
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/cable"
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// backoff returns the exponential delay cap for the n-th attempt (n ≥ 0):
// min·2ⁿ, at most max.
func backoff(n int, min, max time.Duration) time.Duration {
	d := min
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	if d > max || d <= 0 {
		d = max
	}
	return d
}

// fullJitter is a uniform delay in [0, d).
func fullJitter(d time.Duration, r float64) time.Duration {
	return time.Duration(float64(d) * r)
}

// equalJitter is a uniform delay in [d/2, d): never close to zero, so an
// unsubscribe is never followed at once by the subscribe it makes room for.
func equalJitter(d time.Duration, r float64) time.Duration {
	return d/2 + time.Duration(float64(d/2)*r)
}

// paceMargin is the share of SubscribeRate the pool keeps in reserve. The
// bucket bounds subscribes where they are written; Chatwoot times them where
// they are read, after the network and its own scheduling. Arrivals delayed
// by up to d bunch into rate·d extra in some window: at 2,000/s with a
// burst of 5, 3 ms of delay is 6 subscribes over the bound. Pacing 1 %
// below the rate absorbs 10 ms of such delay in every second.
const paceMargin = 0.01

// paceRate is the rate the pool's token buckets run at.
func (c *Config[M]) paceRate() rate.Limit { return rate.Limit(c.SubscribeRate * (1 - paceMargin)) }
