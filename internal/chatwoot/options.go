package chatwoot

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Defaults used for zero Options fields.
const (
	DefaultTimeout           = 15 * time.Second
	DefaultUserAgent         = "relay"
	DefaultMaxAttempts       = 4
	DefaultRetryBaseDelay    = time.Second
	DefaultRetryMaxDelay     = 8 * time.Second
	DefaultMaxResponseBytes  = 32 << 20
	DefaultRequestsPerMinute = 3000 // Chatwoot's RACK_ATTACK_LIMIT default, per client IP
)

// Options configure a Client. Only BaseURL is required.
type Options struct {
	// BaseURL is Chatwoot's root, e.g. https://chat.example.com (a path
	// prefix is kept). The public API is at BaseURL + APIPrefix. Requests
	// only ever go to its scheme and host.
	BaseURL string
	// HTTPClient is copied; its CheckRedirect is replaced. Nil: a client with
	// a transport tuned for many concurrent requests to one host.
	HTTPClient *http.Client
	// Timeout bounds each attempt, including reading the response body.
	// Zero: DefaultTimeout.
	Timeout time.Duration
	// UserAgent is sent unless the caller of Do sets one. Empty:
	// DefaultUserAgent.
	UserAgent string
	// Logger receives per-request lines at Debug. Nil: discard.
	Logger *slog.Logger
	// Registerer receives the relay_chatwoot_* collectors. Nil: metrics are
	// kept but not registered. Clients may share a registerer.
	Registerer prometheus.Registerer
	// Limiter paces every attempt. Share one across all clients of a process.
	// Nil: NewLimiter(DefaultRequestsPerMinute).
	Limiter *rate.Limiter
	// SharedLimiter, when set, is a deployment-wide budget every attempt
	// also waits for, after Limiter (replicas sharing Redis).
	SharedLimiter interface {
		Wait(ctx context.Context) error
	}
	// MaxAttempts bounds attempts per call, retries included. Zero:
	// DefaultMaxAttempts; 1 disables retries.
	MaxAttempts int
	// RetryBaseDelay is the backoff before the first retry; it doubles per
	// retry up to RetryMaxDelay, with jitter. Zero: the defaults.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
	// MaxResponseBytes bounds a response body decoded by a typed call
	// (conversation payloads embed every message). Zero:
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
}

// NewLimiter returns a limiter for a Chatwoot per-IP budget of
// requestsPerMinute (zero or less: DefaultRequestsPerMinute), keeping 10%
// headroom: the default allows 45 requests per second with a burst of 5.
func NewLimiter(requestsPerMinute int) *rate.Limiter {
	if requestsPerMinute <= 0 {
		requestsPerMinute = DefaultRequestsPerMinute
	}
	perSecond := float64(requestsPerMinute) * 0.9 / 60
	burst := max(1, int(perSecond/9))
	return rate.NewLimiter(rate.Limit(perSecond), burst)
}

// withDefaults fills zero fields and reports every invalid one at once.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Timeout < 0 || o.MaxAttempts < 0 || o.RetryBaseDelay < 0 || o.RetryMaxDelay < 0 || o.MaxResponseBytes < 0 {
		errs = append(errs, errors.New("chatwoot: negative duration, attempt count or size in options"))
	}
	o.Timeout = orDefault(o.Timeout, DefaultTimeout)
	o.UserAgent = orDefault(o.UserAgent, DefaultUserAgent)
	o.MaxAttempts = orDefault(o.MaxAttempts, DefaultMaxAttempts)
	o.RetryBaseDelay = orDefault(o.RetryBaseDelay, DefaultRetryBaseDelay)
	o.RetryMaxDelay = orDefault(o.RetryMaxDelay, DefaultRetryMaxDelay)
	o.MaxResponseBytes = orDefault(o.MaxResponseBytes, DefaultMaxResponseBytes)
	if o.RetryMaxDelay < o.RetryBaseDelay {
		errs = append(errs, errors.New("chatwoot: RetryMaxDelay is below RetryBaseDelay"))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Limiter == nil {
		o.Limiter = NewLimiter(DefaultRequestsPerMinute)
	}
	return o, errors.Join(errs...)
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// parseBaseURL checks BaseURL without echoing it (it may carry credentials).
func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return nil, errors.New("chatwoot: BaseURL is required")
	case err != nil:
		return nil, errors.New("chatwoot: BaseURL is not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("chatwoot: BaseURL scheme must be http or https")
	case u.Host == "":
		return nil, errors.New("chatwoot: BaseURL has no host")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return nil, errors.New("chatwoot: BaseURL must not carry credentials, a query or a fragment")
	}
	return u, nil
}

// newTransport is the default transport: the standard one with more idle
// connections per host, since every request goes to the same host, and idle
// connections dropped before Puma's 20 s persistent timeout closes them under
// a request.
func newTransport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 15 * time.Second
	return t
}
