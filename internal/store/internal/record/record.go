package record

import (
	"cmp"
	"encoding/json"
	"fmt"
	"time"

	"github.com/relayhq/relay/internal/store"
)

// Time normalizes t as stored: UTC, microsecond precision (what a Redis
// script compares exactly), no monotonic reading.
func Time(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// Micros encodes t for comparison in scripts: unix microseconds, "0" for the
// zero time.
func Micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// FromMicros reverses Micros.
func FromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// subscription is the stored form of store.Subscription. Field names are the
// on-disk format: change them only with a migration.
type subscription struct {
	ID              string    `json:"id"`
	Token           string    `json:"token"`
	InboxIdentifier string    `json:"inbox_identifier,omitempty"`
	SourceID        string    `json:"source_id,omitempty"`
	ContactID       string    `json:"contact_id,omitempty"`
	InboxID         string    `json:"inbox_id,omitempty"`
	AccountID       string    `json:"account_id,omitempty"`
	Origin          string    `json:"origin,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	LastActivityAt  time.Time `json:"last_activity_at"`
}

// EncodeSubscription returns the stored form of s.
func EncodeSubscription(s store.Subscription) ([]byte, error) {
	return json.Marshal(subscription(s))
}

// DecodeSubscription parses a stored subscription. The error never quotes the
// data (it holds a token).
func DecodeSubscription(b []byte) (store.Subscription, error) {
	var r subscription
	if err := json.Unmarshal(b, &r); err != nil {
		return store.Subscription{}, fmt.Errorf("store: corrupt subscription record (%d bytes)", len(b))
	}
	s := store.Subscription(r)
	s.CreatedAt, s.UpdatedAt, s.LastActivityAt = Time(s.CreatedAt), Time(s.UpdatedAt), Time(s.LastActivityAt)
	return s, nil
}

// NewSubscription prepares s for a put at now: times normalized, CreatedAt
// defaulted to now, UpdatedAt set to now.
func NewSubscription(s store.Subscription, now time.Time) store.Subscription {
	now = Time(now)
	s.CreatedAt = Time(s.CreatedAt)
	if s.CreatedAt.IsZero() {
		s.CreatedAt = now
	}
	s.UpdatedAt = now
	s.LastActivityAt = Time(s.LastActivityAt)
	return s
}

// NewSubscriptions validates a PutSubscriptions batch and prepares each
// record with NewSubscription. The error names the index of the first
// invalid record, never its content.
func NewSubscriptions(subs []store.Subscription, now time.Time) ([]store.PutResult, error) {
	out := make([]store.PutResult, len(subs))
	for i, s := range subs {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("record %d of %d: %w", i, len(subs), err)
		}
		out[i].Stored = NewSubscription(s, now)
	}
	return out, nil
}

// Limit applies the ListSubscriptions page size rules.
func Limit(limit int) int {
	if limit <= 0 {
		return store.DefaultListLimit
	}
	return min(limit, store.MaxListLimit)
}

// CompareConversationIDs orders display ids numerically (shorter first, then
// bytewise), which is plain numeric order for ids without leading zeros.
func CompareConversationIDs(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

// Name checks a non-empty identifier argument (subscription id, key, lease
// name, holder, member).
func Name(what, v string) error {
	if v == "" {
		return fmt.Errorf("%w: empty %s", store.ErrInvalid, what)
	}
	return nil
}

// TTL checks a lease or heartbeat TTL.
func TTL(ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: ttl %v must be positive", store.ErrInvalid, ttl)
	}
	return nil
}

// IdempotencyTTL applies the idempotency TTL default.
func IdempotencyTTL(ttl time.Duration) (time.Duration, error) {
	switch {
	case ttl < 0:
		return 0, fmt.Errorf("%w: ttl %v must not be negative", store.ErrInvalid, ttl)
	case ttl == 0:
		return store.DefaultIdempotencyTTL, nil
	}
	return ttl, nil
}
