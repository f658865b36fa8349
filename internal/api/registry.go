package api

import (
	"context"
	"time"
)

// Registration is what the API hands the subscription registry: a
// pubsub_token to subscribe, with what is known about its contact.
type Registration struct {
	Token           string // pubsub_token (credential: never log, never return)
	InboxIdentifier string // optional; with SourceID enables catch-up and verification
	SourceID        string // optional; the contact's source_id (the public API's contact identifier)
	ContactID       string // optional, Chatwoot contact id when known (contact create/show responses have "id")
	Origin          string // "api" (POST /v1/subscriptions) or "proxy" (contact create/show)
}

// Origins of a Registration.
const (
	OriginAPI   = "api"
	OriginProxy = "proxy"
)

// Subscription is a registered subscription as the API returns it (JSON). It
// never holds the token or the source_id.
type Subscription struct {
	ID              string     `json:"id"`    // stable hash of the token
	State           string     `json:"state"` // pending|confirmed|retrying|parked|invalid
	InboxIdentifier string     `json:"inbox_identifier,omitempty"`
	ContactID       string     `json:"contact_id,omitempty"`
	InboxID         string     `json:"inbox_id,omitempty"`
	AccountID       string     `json:"account_id,omitempty"`
	CatchUp         bool       `json:"catch_up"` // false when registered by token only: no gap filling
	Origin          string     `json:"origin"`
	CreatedAt       time.Time  `json:"created_at"`
	ConfirmedAt     *time.Time `json:"confirmed_at,omitempty"`
	LastEventAt     *time.Time `json:"last_event_at,omitempty"`
	Confirms        int        `json:"confirms"`
	Events          uint64     `json:"events"`
	// Owner is the replica subscribing it, when replicas split the
	// subscriptions (GET of one subscription only; "" when none holds it).
	Owner string `json:"owner,omitempty"`
}

// Subscription states, the values GET /v1/subscriptions?state= accepts.
const (
	StatePending   = "pending"
	StateConfirmed = "confirmed"
	StateRetrying  = "retrying"
	StateInvalid   = "invalid"
	// StateParked: never confirmed by a Chatwoot that confirms others (an
	// unknown token, most likely); tried again at a long interval.
	StateParked = "parked"
)

// Registry is the subscription registry the API manages.
//
// Errors choose the HTTP status: store.ErrNotFound is 404; errors wrapping
// ErrInvalid or store.ErrInvalid are 400, ErrConflict 409, ErrUnavailable,
// store.ErrClosed or context.DeadlineExceeded 503; anything else is a 500
// whose text is logged, not returned. Error texts must not contain tokens or
// source_ids.
type Registry interface {
	// Register subscribes r.Token; it is idempotent per token and reports
	// whether the subscription was created by this call.
	Register(ctx context.Context, r Registration) (sub Subscription, created bool, err error)
	// RegisterBatch registers many tokens as Register would one after the
	// other, with grouped store writes. results[i] is the outcome of
	// regs[i]; an invalid registration fails alone, in its result. The
	// error is for the batch as a whole (the store failed): registrations
	// from the failed write on are NotRegistered.
	RegisterBatch(ctx context.Context, regs []Registration) (results []BatchResult, err error)
	// Get returns the subscription, or store.ErrNotFound when unknown.
	Get(ctx context.Context, id string) (Subscription, error)
	// List returns a page of subscriptions, in the given state when state is
	// not empty, after cursor ("" for the first page), and the cursor of the
	// next page ("" after the last).
	List(ctx context.Context, state, cursor string, limit int) (subs []Subscription, next string, err error)
	// Remove unsubscribes and forgets the subscription, or returns
	// store.ErrNotFound when unknown.
	Remove(ctx context.Context, id string) error
}

// Outcome says what RegisterBatch did with one registration.
type Outcome int

// Outcomes of a registration in a batch.
const (
	NotRegistered Outcome = iota // invalid (Err says why), or the batch stopped before it
	Created                      // a new record was stored
	Updated                      // the record gained facts and was written
	Unchanged                    // the record already held everything: nothing written
)

func (o Outcome) String() string {
	switch o {
	case Created:
		return "created"
	case Updated:
		return "updated"
	case Unchanged:
		return "unchanged"
	}
	return "not_registered"
}

// BatchResult is the outcome of one registration of RegisterBatch.
type BatchResult struct {
	ID      string // subscription id; "" when the token is invalid
	Outcome Outcome
	// Subscription is the registered subscription, as Register returns it
	// (zero when not registered).
	Subscription Subscription
	// Err is why this registration failed: an invalid token (ErrInvalid),
	// the subscription limit (ErrLimit) or a pool refusal. It names the
	// registration's index in the batch, never its token; errors.Unwrap
	// of it is the cause.
	Err error
}
