package api

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/store"
)

// Defaults used for zero Options fields.
const (
	DefaultMaxBodyBytes       = 1 << 20  // JSON and form bodies
	DefaultMaxMultipartBytes  = 40 << 20 // Chatwoot's default MAXIMUM_FILE_UPLOAD_SIZE is 40 MB
	DefaultMaxResponseBytes   = 1 << 20  // Chatwoot responses the relay reads (contacts, message create)
	DefaultRequestTimeout     = 30 * time.Second
	DefaultEchoWait           = 10 * time.Second
	DefaultIdempotencyTTL     = 24 * time.Hour
	DefaultIdempotencyLockTTL = 2 * time.Minute
	DefaultMaxEchoWaiters     = 10000
	DefaultOutcomeGrace       = 30 * time.Second
	DefaultMaxConcurrent      = 1024
	DefaultBodyReadTimeout    = 15 * time.Second
	DefaultUploadReadTimeout  = 5 * time.Minute // attachments up to MaxMultipartBytes on slow links
)

// Options configure a Server. Registry and Chatwoot are required.
type Options struct {
	// Registry holds the subscriptions.
	Registry Registry
	// Feeds holds the account feeds. Nil: /v1/feeds answers 404.
	Feeds Feeds
	// Chatwoot is the client every proxied request goes through; it only
	// ever talks to the configured Chatwoot.
	Chatwoot *chatwoot.Client
	// Store keeps Idempotency-Key records of message sends. Nil: requests
	// carrying an Idempotency-Key are refused with 503 rather than sent
	// without the protection the client asked for.
	Store store.Idempotency
	// APITokens are accepted bearer tokens with full access (every scope,
	// every inbox). With neither APITokens nor Tokens, no token is needed
	// but only local requests are served: from a loopback address, to a
	// loopback host name, not forwarded by a proxy, not from another
	// site's web page.
	APITokens []string
	// Tokens are accepted bearer tokens with limited scopes. New refuses
	// an invalid one and a token given twice.
	Tokens []Token
	// Webhooks manages webhook endpoints (/v1/webhooks, admin scope).
	// Nil: those routes answer 404 (webhook delivery needs JetStream).
	Webhooks Webhooks
	// InboxHMACTokens maps an inbox identifier to its hmac_token, for
	// filling in identifier_hash on contact calls.
	InboxHMACTokens map[string]string
	// Echoes receives message.created echoes for ?wait=echo. Nil: the
	// server makes one (with DefaultMaxEchoWaiters); Server.Echoes returns it.
	Echoes *EchoTracker
	// Cluster is the replicas' membership (GET /v1/cluster, the owner of a
	// subscription). Nil: a single replica.
	Cluster Cluster
	// Ready reports readiness for /readyz. Nil: always ready.
	Ready func() error
	// Metrics serves /metrics. Nil: /metrics answers 404.
	Metrics http.Handler
	// Logger receives request and failure logs. Nil: discard.
	Logger *slog.Logger
	// Registerer receives the relay_api_* collectors. Nil: not registered.
	Registerer prometheus.Registerer

	// MaxBodyBytes bounds JSON and form bodies. Zero: DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxMultipartBytes bounds multipart bodies (attachments). Zero:
	// DefaultMaxMultipartBytes.
	MaxMultipartBytes int64
	// MaxResponseBytes bounds the Chatwoot responses the relay reads
	// before answering (contact create/show, message create). Zero:
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// RequestTimeout bounds the work of one request: registry calls and
	// Chatwoot calls including rate-limiter waits and retries. The Chatwoot
	// client's own per-attempt timeout applies within it. A request whose
	// multipart body is streamed to Chatwoot as it arrives gets
	// UploadReadTimeout + RequestTimeout. Zero: DefaultRequestTimeout.
	RequestTimeout time.Duration
	// EchoWait bounds ?wait=echo after Chatwoot answered. Zero:
	// DefaultEchoWait.
	EchoWait time.Duration
	// IdempotencyTTL is how long a completed Idempotency-Key is replayed.
	// Zero: DefaultIdempotencyTTL.
	IdempotencyTTL time.Duration
	// IdempotencyLockTTL bounds how long a key stays reserved when its
	// request dies before finishing (a crashed replica). It must exceed
	// what a live request may hold the key: UploadReadTimeout +
	// RequestTimeout (a multipart send is streamed as it is uploaded) plus
	// the 10 s allowed to store the outcome. Zero: DefaultIdempotencyLockTTL,
	// or that bound plus a minute when it is longer.
	IdempotencyLockTTL time.Duration
	// OutcomeGrace is how long after RequestTimeout a send whose outcome is
	// unknown (timeout, lost connection) may still be running at Chatwoot:
	// until then a retry with its Idempotency-Key that does not find the
	// message gets 503 instead of posting again. Zero: DefaultOutcomeGrace.
	OutcomeGrace time.Duration

	// MaxConcurrent bounds the requests served at once; /healthz, /readyz
	// and /metrics are outside the bound. Past it a request is refused at
	// once with 503 and Retry-After, never queued. Zero: DefaultMaxConcurrent.
	MaxConcurrent int
	// BodyReadTimeout bounds reading a request body that cannot carry an
	// upload (all but multipart bodies on the proxied public API), from
	// when the request is routed. Zero: DefaultBodyReadTimeout.
	BodyReadTimeout time.Duration
	// UploadReadTimeout bounds reading a multipart body on the proxied
	// public API. The http.Server's ReadTimeout should be at least this.
	// Zero: DefaultUploadReadTimeout.
	UploadReadTimeout time.Duration
}

// withDefaults fills zero fields and reports every invalid one at once.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Feeds == nil {
		o.Feeds = noFeeds{}
	}
	if o.Registry == nil {
		errs = append(errs, errors.New("api: Registry is required"))
	}
	if o.Chatwoot == nil {
		errs = append(errs, errors.New("api: Chatwoot is required"))
	}
	if o.MaxBodyBytes < 0 || o.MaxMultipartBytes < 0 || o.MaxResponseBytes < 0 ||
		o.RequestTimeout < 0 || o.EchoWait < 0 || o.IdempotencyTTL < 0 || o.IdempotencyLockTTL < 0 || o.OutcomeGrace < 0 ||
		o.MaxConcurrent < 0 || o.BodyReadTimeout < 0 || o.UploadReadTimeout < 0 {
		errs = append(errs, errors.New("api: negative size or duration in options"))
	}
	o.MaxBodyBytes = orDefault(o.MaxBodyBytes, DefaultMaxBodyBytes)
	o.MaxMultipartBytes = orDefault(o.MaxMultipartBytes, DefaultMaxMultipartBytes)
	o.MaxResponseBytes = orDefault(o.MaxResponseBytes, DefaultMaxResponseBytes)
	o.RequestTimeout = orDefault(o.RequestTimeout, DefaultRequestTimeout)
	o.EchoWait = orDefault(o.EchoWait, DefaultEchoWait)
	o.IdempotencyTTL = orDefault(o.IdempotencyTTL, DefaultIdempotencyTTL)
	o.OutcomeGrace = orDefault(o.OutcomeGrace, DefaultOutcomeGrace)
	o.MaxConcurrent = orDefault(o.MaxConcurrent, DefaultMaxConcurrent)
	o.BodyReadTimeout = orDefault(o.BodyReadTimeout, DefaultBodyReadTimeout)
	o.UploadReadTimeout = orDefault(o.UploadReadTimeout, DefaultUploadReadTimeout)
	o.IdempotencyLockTTL = orDefault(o.IdempotencyLockTTL, o.defaultLockTTL())
	if o.IdempotencyLockTTL <= o.maxRequestTimeout()+settleTimeout {
		errs = append(errs, fmt.Errorf("api: IdempotencyLockTTL must exceed UploadReadTimeout + RequestTimeout + %v "+
			"(a keyed multipart send, then storing the outcome)", settleTimeout))
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Echoes == nil {
		o.Echoes = NewEchoTracker(DefaultMaxEchoWaiters)
	}
	return o, errors.Join(errs...)
}

// maxRequestTimeout is the longest a request may run: a multipart send,
// streamed to Chatwoot as the client uploads it (UploadReadTimeout), then
// answered (RequestTimeout).
func (o Options) maxRequestTimeout() time.Duration { return o.UploadReadTimeout + o.RequestTimeout }

// lockTTLMargin is what the default IdempotencyLockTTL keeps above the
// longest request and the storing of its outcome.
const lockTTLMargin = time.Minute

// defaultLockTTL is the IdempotencyLockTTL of zero Options: at least
// DefaultIdempotencyLockTTL, and longer than a keyed multipart send. The
// lock is sized to the upload rather than the keyed upload capped to the
// lock: a client that sends attachments with an Idempotency-Key is the one
// on a slow link that retries, and must get the upload time an unkeyed send
// gets. A longer lock only costs when a replica dies holding it: retries
// with that key get 409 until it expires.
func (o Options) defaultLockTTL() time.Duration {
	return max(DefaultIdempotencyLockTTL, o.maxRequestTimeout()+settleTimeout+lockTTLMargin)
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
