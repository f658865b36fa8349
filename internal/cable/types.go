package cable

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/relayhq/relay/internal/jsonscan"
)

// State is a subscription's state.
type State uint8

// Subscription states.
const (
	// StatePending: waiting for a connection, for its turn to subscribe, or for the confirm.
	StatePending State = iota
	// StateConfirmed: the server confirmed; broadcasts flow.
	StateConfirmed
	// StateRetrying: a subscribe went unconfirmed; waiting to try again.
	StateRetrying
	// StateInvalid: rejected by the server or declared dead by the Verifier.
	// No more attempts until the token is added again.
	StateInvalid
	// StateParked: unconfirmed ParkAfter times in a row by a Chatwoot that
	// confirms other subscriptions, as it does for a token it does not
	// know (it answers those with silence, never a rejection). Tried again
	// every ParkInterval, after every other subscribe waiting.
	StateParked
	numStates
)

var stateNames = [...]string{"pending", "confirmed", "retrying", "invalid", "parked"}

func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "unknown"
}

// Change is what happened to a subscription, reported through Config.OnState.
type Change uint8

// Changes.
const (
	// ChangeConfirmed: confirm_subscription arrived (first time or again
	// after a reconnect); anything broadcast before it may be lost.
	ChangeConfirmed Change = iota + 1
	// ChangeLost: a confirmed subscription's connection went away.
	ChangeLost
	// ChangeInvalid: the subscription became invalid.
	ChangeInvalid
	// ChangeRemoved: the subscription was removed from the pool.
	ChangeRemoved
	// ChangeGap: a broadcast for a confirmed subscription was dropped
	// (delivery queue full); a catch-up should fill it.
	ChangeGap
)

var changeNames = [...]string{"", "confirmed", "lost", "invalid", "removed", "gap"}

func (c Change) String() string {
	if int(c) < len(changeNames) && c > 0 {
		return changeNames[c]
	}
	return "unknown"
}

// StateChange reports a Change of one subscription.
type StateChange[M any] struct {
	ID     string
	Meta   M
	Change Change
	// Confirms counts confirms so far, this one included: 1 on the first
	// confirm of the subscription in this process, more after reconnects.
	Confirms int
	// Reason says why, for lost and invalid (e.g. "stale", "rejected", "verifier").
	Reason string
	At     time.Time
}

// Delivery is one broadcast for a subscription.
type Delivery[M any] struct {
	ID   string
	Meta M
	// Message is the raw JSON of the frame's "message" object. The handler
	// owns it, unless Borrowed.
	Message []byte
	// Fields are the values of Message that Config.Fields names, captured
	// while the frame was decoded. Offsets are relative to Message, so they
	// hold for a copy of it too.
	Fields jsonscan.Fields
	// Borrowed: Message is the reader's buffer (Config.Direct), valid only
	// until Handler returns. A handler that keeps it copies it.
	Borrowed   bool
	ReceivedAt time.Time
}

// Verdict is a Verifier's answer.
type Verdict uint8

// Verdicts.
const (
	// VerdictUnknown: could not tell (no data to check with, or the check failed). Keep retrying.
	VerdictUnknown Verdict = iota
	// VerdictValid: the token exists; keep retrying.
	VerdictValid
	// VerdictInvalid: the token is gone; stop.
	VerdictInvalid
)

// Verifier checks a subscription that keeps going unconfirmed, e.g. through
// Chatwoot's public API (contact show → 404, or another pubsub_token, means
// the token is dead).
type Verifier[M any] interface {
	Verify(ctx context.Context, id string, meta M) (Verdict, error)
}

// VerifierFunc adapts a function to Verifier.
type VerifierFunc[M any] func(ctx context.Context, id string, meta M) (Verdict, error)

// Verify calls f.
func (f VerifierFunc[M]) Verify(ctx context.Context, id string, meta M) (Verdict, error) {
	return f(ctx, id, meta)
}

// Info is a snapshot of one subscription.
type Info[M any] struct {
	ID             string
	Meta           M
	State          State
	Conn           int // connection number, 0 when unplaced
	Confirms       int
	Misses         int // confirm timeouts in a row
	ConfirmLatency time.Duration
	ConfirmedAt    time.Time
	LastEventAt    time.Time
	Events         uint64
	Dropped        uint64
}

// SubscriptionID is the stable public id of a token: the first 16 hex digits
// of SHA-256 over a domain prefix and the token. It names a subscription in
// logs, metrics-free diagnostics, NATS headers and the HTTP API; the token
// itself never leaves the process.
func SubscriptionID(token string) string {
	h := sha256.Sum256([]byte("relay/subscription\x00" + token))
	return hex.EncodeToString(h[:8])
}

// UserSubscriptionID is the stable public id of a user's subscription to
// one account, like SubscriptionID (and never equal to one).
func UserSubscriptionID(token string, accountID int64) string {
	h := sha256.Sum256([]byte("relay/feed\x00" + strconv.FormatInt(accountID, 10) + "\x00" + token))
	return hex.EncodeToString(h[:8])
}
