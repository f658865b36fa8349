package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Backends wrap them with %w and context that never includes
// a token or source_id.
var (
	// ErrNotFound means the subscription, cursor or lease does not exist (or
	// has expired).
	ErrNotFound = errors.New("store: not found")
	// ErrNotHolder means a lease release was attempted by someone who does not
	// hold it (held by another holder, expired or free).
	ErrNotHolder = errors.New("store: lease not held by caller")
	// ErrInvalid means an argument was rejected before touching storage
	// (empty id, negative message id, non-numeric updated_at, ...).
	ErrInvalid = errors.New("store: invalid argument")
	// ErrClosed means the store has been closed.
	ErrClosed = errors.New("store: closed")
)

// DefaultIdempotencyTTL is how long an idempotency key lives when the caller
// passes a zero TTL.
const DefaultIdempotencyTTL = 24 * time.Hour

// Store is the relay's persistent state. Implementations are safe for
// concurrent use by many goroutines (and, for Redis, many replicas).
type Store interface {
	Subscriptions
	Cursors
	Idempotency
	Leases
	Webhooks
	Feeds
	// Ping reports whether the backing storage is reachable (readiness).
	Ping(ctx context.Context) error
	// Close releases the store. It is safe to call more than once; other
	// methods return ErrClosed afterwards.
	Close() error
}

// Subscriptions is the subscription registry.
type Subscriptions interface {
	// PutSubscription inserts or replaces the subscription with s.ID and
	// returns the stored record and whether it was created. CreatedAt is kept
	// from the first put (s.CreatedAt, or now when zero); UpdatedAt is set to
	// now; LastActivityAt never moves backwards.
	PutSubscription(ctx context.Context, s Subscription) (stored Subscription, created bool, err error)
	// PutSubscriptions puts many subscriptions in one transaction (bbolt) or
	// one atomic script (Redis): one fsync or round trip for the batch.
	// Each record gets exactly the PutSubscription semantics, applied in
	// order, so a later record with the same id sees the earlier one.
	// results[i] is the outcome of subs[i]. An invalid record (empty id)
	// rejects the batch with ErrInvalid, naming its index, before anything
	// is written. An empty batch does nothing. Puts are idempotent: after
	// an error, put the batch again. Keep batches to a few thousand records
	// (a Redis script blocks the server while it runs).
	PutSubscriptions(ctx context.Context, subs []Subscription) (results []PutResult, err error)
	// GetSubscriptions returns, in one read, the subscriptions with the
	// given ids that exist, in the order of ids; missing ids are skipped.
	GetSubscriptions(ctx context.Context, ids []string) ([]Subscription, error)
	// GetSubscription returns the subscription or ErrNotFound.
	GetSubscription(ctx context.Context, id string) (Subscription, error)
	// DeleteSubscription removes the subscription and all its cursors, or
	// returns ErrNotFound.
	DeleteSubscription(ctx context.Context, id string) error
	// ListSubscriptions returns up to limit subscriptions with an id greater
	// than after, in increasing id order, and the cursor for the next page
	// ("" when this page is the last). Pages stay consistent under concurrent
	// inserts and deletes: every subscription present for the whole walk is
	// returned exactly once. A page may hold fewer than limit items even
	// when more follow (records deleted meanwhile): stop when next is "".
	// A limit <= 0 means DefaultListLimit; limits above MaxListLimit are
	// capped.
	ListSubscriptions(ctx context.Context, after string, limit int) (subs []Subscription, next string, err error)
	// CountSubscriptions returns the number of registered subscriptions.
	CountSubscriptions(ctx context.Context) (int, error)
	// TouchSubscription moves LastActivityAt forward to at (never back), or
	// returns ErrNotFound.
	TouchSubscription(ctx context.Context, id string, at time.Time) error
}

// DefaultListLimit is the page size of ListSubscriptions when limit <= 0;
// MaxListLimit caps larger limits.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Cursors holds catch-up progress per (subscription, conversation).
type Cursors interface {
	// GetCursor returns the cursor or ErrNotFound.
	GetCursor(ctx context.Context, subscriptionID, conversationID string) (Cursor, error)
	// PutCursor merges c into the stored cursor with Cursor.Advance,
	// atomically, and returns the result. It returns ErrNotFound when the
	// subscription is not registered.
	PutCursor(ctx context.Context, c Cursor) (Cursor, error)
	// ListCursors returns every cursor of a subscription ordered by
	// conversation id (numerically for numeric display ids).
	ListCursors(ctx context.Context, subscriptionID string) ([]Cursor, error)
	// DeleteCursors removes every cursor of a subscription. Removing none is
	// not an error.
	DeleteCursors(ctx context.Context, subscriptionID string) error
}

// IdempotencyState is the outcome of ReserveIdempotency.
type IdempotencyState int

const (
	// IdempotencyReserved: the caller now owns the key and must call upstream,
	// then CompleteIdempotency or ReleaseIdempotency.
	IdempotencyReserved IdempotencyState = iota + 1
	// IdempotencyInProgress: another caller owns the key and has not finished.
	IdempotencyInProgress
	// IdempotencyCompleted: the key is done; the stored response is returned.
	IdempotencyCompleted
)

func (s IdempotencyState) String() string {
	switch s {
	case IdempotencyReserved:
		return "reserved"
	case IdempotencyInProgress:
		return "in_progress"
	case IdempotencyCompleted:
		return "completed"
	}
	return "unknown"
}

// Idempotency makes retried requests run once.
type Idempotency interface {
	// ReserveIdempotency reserves key for ttl (DefaultIdempotencyTTL when
	// zero) if it is free or expired. Otherwise it reports the key in
	// progress, or completed with the stored response. Of many concurrent
	// callers exactly one gets IdempotencyReserved. A short reservation TTL
	// bounds how long a crashed caller blocks retries.
	ReserveIdempotency(ctx context.Context, key string, ttl time.Duration) (IdempotencyState, []byte, error)
	// CompleteIdempotency stores response for key, kept for ttl
	// (DefaultIdempotencyTTL when zero). Later reservations return it.
	CompleteIdempotency(ctx context.Context, key string, response []byte, ttl time.Duration) error
	// ReleaseIdempotency frees an in-progress key so a retry can proceed. A
	// completed or absent key is left as it is, without error.
	ReleaseIdempotency(ctx context.Context, key string) error
}

// Leases are named, expiring ownership records plus membership heartbeats.
type Leases interface {
	// AcquireLease gives name to holder for ttl when it is free, expired or
	// already held by holder (a renewal), and reports whether holder now
	// holds it.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease frees name if holder holds it, else returns ErrNotHolder.
	ReleaseLease(ctx context.Context, name, holder string) error
	// LeaseHolder returns the current holder of name, or ErrNotFound when the
	// lease is free or expired.
	LeaseHolder(ctx context.Context, name string) (string, error)
	// Heartbeat marks member alive for ttl.
	Heartbeat(ctx context.Context, member string, ttl time.Duration) error
	// Leave removes member at once (graceful shutdown). Removing an unknown
	// member is not an error.
	Leave(ctx context.Context, member string) error
	// Members returns the members whose heartbeat has not expired, sorted.
	Members(ctx context.Context) ([]string, error)

	// ClaimLease is AcquireLease with a fencing token: a lease that was
	// free or expired is granted with a token larger than every token name
	// had before; a renewal by its holder keeps the token. When another
	// holder has it, ok is false and l describes that holder's lease.
	ClaimLease(ctx context.Context, name, holder string, ttl time.Duration) (l Lease, ok bool, err error)
	// RenewLease extends l for ttl if l.Holder still holds name with
	// l.Token (compare-and-set); false when the lease expired or was
	// granted again since, to anyone.
	RenewLease(ctx context.Context, l Lease, ttl time.Duration) (bool, error)
	// ReleaseHeld frees l's lease only while it is held with l.Token, else
	// returns ErrNotHolder: a holder never deletes a lease granted again
	// after its own expired.
	ReleaseHeld(ctx context.Context, l Lease) error
	// PinSetting records value under name unless a value is recorded
	// already, and returns the recorded value: deployment-wide settings
	// that must never change (the bucket count) are checked against it.
	PinSetting(ctx context.Context, name, value string) (string, error)
}

// Lease is one grant of a named lease. Token is its fencing token: every
// grant of a free or expired lease gets a larger one, so a stale holder's
// renewal or release can be told apart from the current holder's.
type Lease struct {
	Name   string
	Holder string
	Token  int64
	Since  time.Time // when this grant was made (the granting replica's clock)
}

// Webhook is a stored webhook endpoint: its id and its configuration, an
// opaque JSON document owned by the webhook package. The document holds
// the endpoint's signing secrets: the store keeps it as it keeps tokens.
type Webhook struct {
	ID   string
	Data []byte
}

// Webhooks holds the webhook endpoints managed through the API.
type Webhooks interface {
	// PutWebhook inserts or replaces the endpoint with w.ID. An empty id
	// or empty data is ErrInvalid.
	PutWebhook(ctx context.Context, w Webhook) error
	// GetWebhook returns the endpoint or ErrNotFound.
	GetWebhook(ctx context.Context, id string) (Webhook, error)
	// DeleteWebhook removes the endpoint or returns ErrNotFound.
	DeleteWebhook(ctx context.Context, id string) error
	// ListWebhooks returns every endpoint in increasing id order.
	ListWebhooks(ctx context.Context) ([]Webhook, error)
}

// Validate checks a Webhook before it is stored.
func (w Webhook) Validate() error {
	if w.ID == "" || len(w.Data) == 0 {
		return fmt.Errorf("%w: webhook needs an id and data", ErrInvalid)
	}
	return nil
}
