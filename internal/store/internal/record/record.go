package record

import (
	"cmp"
	"encoding/binary"
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

// A stored subscription is binary (format 1): a version byte, then the
// eight strings (id, token, inbox identifier, source id, contact id, inbox
// id, account id, origin) each as a uvarint length and its bytes, then the
// three times (created, updated, last activity) as varint unix
// microseconds, 0 for the zero time. About 80 bytes for a token-only
// subscription, where JSON took about 230: a relay holding 100,000
// subscriptions maps a state file a third the size.
//
// The bbolt store writes format 1; records it wrote as JSON before (they
// start with '{') are still read, and rewritten in format 1 when next put.
// The Redis store keeps writing JSON (EncodeSubscriptionJSON): its layout
// is read by other tools and by older replicas during a rolling deploy, and
// it costs the relay no memory.
const formatV1 = 1

// jsonSubscription is the JSON form of store.Subscription. Field names are
// that format: do not change them.
type jsonSubscription struct {
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

// EncodeSubscriptionJSON returns the JSON form of s.
func EncodeSubscriptionJSON(s store.Subscription) ([]byte, error) {
	return json.Marshal(jsonSubscription(s))
}

// EncodeSubscription returns format 1 of s.
func EncodeSubscription(s store.Subscription) ([]byte, error) {
	strs := subscriptionStrings(&s)
	n := 1 + 3*binary.MaxVarintLen64
	for _, p := range strs {
		n += binary.MaxVarintLen64 + len(*p)
	}
	b := make([]byte, 1, n)
	b[0] = formatV1
	for _, p := range strs {
		b = binary.AppendUvarint(b, uint64(len(*p)))
		b = append(b, *p...)
	}
	for _, t := range []time.Time{s.CreatedAt, s.UpdatedAt, s.LastActivityAt} {
		b = binary.AppendVarint(b, Micros(Time(t)))
	}
	return b, nil
}

// DecodeSubscription parses a stored subscription in either form. The
// error never quotes the data (it holds a token).
func DecodeSubscription(b []byte) (store.Subscription, error) {
	if len(b) > 0 && b[0] == '{' {
		return decodeJSON(b)
	}
	corrupt := fmt.Errorf("store: corrupt subscription record (%d bytes)", len(b))
	if len(b) == 0 || b[0] != formatV1 {
		return store.Subscription{}, corrupt
	}
	var s store.Subscription
	rest := b[1:]
	for _, p := range subscriptionStrings(&s) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return store.Subscription{}, corrupt
		}
		*p = string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
	}
	for _, t := range []*time.Time{&s.CreatedAt, &s.UpdatedAt, &s.LastActivityAt} {
		us, k := binary.Varint(rest)
		if k <= 0 {
			return store.Subscription{}, corrupt
		}
		*t = FromMicros(us)
		rest = rest[k:]
	}
	if len(rest) != 0 {
		return store.Subscription{}, corrupt
	}
	return s, nil
}

// subscriptionStrings lists the string fields of s in stored order.
func subscriptionStrings(s *store.Subscription) [8]*string {
	return [8]*string{&s.ID, &s.Token, &s.InboxIdentifier, &s.SourceID, &s.ContactID, &s.InboxID, &s.AccountID, &s.Origin}
}

func decodeJSON(b []byte) (store.Subscription, error) {
	var r jsonSubscription
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
