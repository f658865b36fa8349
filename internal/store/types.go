package store

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"
)

// Subscription is one registered pubsub_token.
//
// Token and SourceID are credentials: LogValue, String and GoString redact
// them, so a Subscription can be logged or formatted safely.
type Subscription struct {
	ID              string // stable hash of Token, computed by the registrant
	Token           string // the contact's pubsub_token (credential)
	InboxIdentifier string // "" when registered by token only
	SourceID        string // contact source_id (credential-like)
	ContactID       string // Chatwoot contact id, "" unknown
	InboxID         string // numeric inbox id, "" unknown
	AccountID       string // "" unknown
	Origin          string // who registered it: OriginAPI, OriginFile, OriginProxy
	CreatedAt       time.Time
	UpdatedAt       time.Time
	LastActivityAt  time.Time // orders catch-up, most recently active first
}

// PutResult is the outcome of one record of PutSubscriptions: the record as
// stored and whether it was created.
type PutResult struct {
	Stored  Subscription
	Created bool
}

// Origins of a subscription.
const (
	OriginAPI   = "api"
	OriginFile  = "file"
	OriginProxy = "proxy"
)

const redacted = "REDACTED"

// LogValue implements slog.LogValuer without the credentials.
func (s Subscription) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", s.ID),
		slog.String("token", redactNonEmpty(s.Token)),
		slog.String("inbox_identifier", s.InboxIdentifier),
		slog.String("source_id", redactNonEmpty(s.SourceID)),
		slog.String("contact_id", s.ContactID),
		slog.String("inbox_id", s.InboxID),
		slog.String("account_id", s.AccountID),
		slog.String("origin", s.Origin),
	)
}

// String describes s without the credentials.
func (s Subscription) String() string {
	return fmt.Sprintf("subscription{id=%s inbox=%s contact=%s account=%s origin=%s token=%s source_id=%s}",
		s.ID, s.InboxID, s.ContactID, s.AccountID, s.Origin, redactNonEmpty(s.Token), redactNonEmpty(s.SourceID))
}

// GoString keeps %#v from printing the credentials.
func (s Subscription) GoString() string { return s.String() }

func redactNonEmpty(v string) string {
	if v == "" {
		return ""
	}
	return redacted
}

// Validate reports whether s can be stored.
func (s Subscription) Validate() error {
	if s.ID == "" {
		return fmt.Errorf("%w: empty subscription id", ErrInvalid)
	}
	return nil
}

// MaxMessageID is the largest message id a cursor stores. Both backends
// compare ids exactly up to it (Redis scripts use doubles).
const MaxMessageID = 1 << 53

// Cursor is catch-up progress for one conversation of one subscription.
type Cursor struct {
	SubscriptionID string
	ConversationID string // conversation display_id
	LastMessageID  int64  // last message id seen, 0 none
	Status         string // last known conversation status, "" unknown
	UpdatedAt      string // conversation updated_at as Chatwoot sent it (a number), "" unknown
}

// Validate reports whether c can be stored.
func (c Cursor) Validate() error {
	switch {
	case c.SubscriptionID == "":
		return fmt.Errorf("%w: empty subscription id", ErrInvalid)
	case c.ConversationID == "":
		return fmt.Errorf("%w: empty conversation id", ErrInvalid)
	case c.LastMessageID < 0 || c.LastMessageID > MaxMessageID:
		return fmt.Errorf("%w: message id %d out of range", ErrInvalid, c.LastMessageID)
	case strings.Contains(c.Status, "|"):
		return fmt.Errorf("%w: status contains '|'", ErrInvalid)
	case c.UpdatedAt != "" && !isNumber(c.UpdatedAt):
		return fmt.Errorf("%w: updated_at %q is not a number", ErrInvalid, c.UpdatedAt)
	}
	return nil
}

// Advance returns c moved forward by u, the merge PutCursor applies:
//
//   - LastMessageID becomes the larger of the two;
//   - Status and UpdatedAt are taken from u when u is not older: u.UpdatedAt
//     is numerically >= c.UpdatedAt, or c has no UpdatedAt. An update without
//     UpdatedAt only applies while c has none either. Within an applied
//     update an empty field keeps the stored value.
func (c Cursor) Advance(u Cursor) Cursor {
	out := c
	out.SubscriptionID, out.ConversationID = u.SubscriptionID, u.ConversationID
	out.LastMessageID = max(c.LastMessageID, u.LastMessageID)
	if !conversationNewer(c.UpdatedAt, u.Status, u.UpdatedAt) {
		return out
	}
	if u.Status != "" {
		out.Status = u.Status
	}
	if u.UpdatedAt != "" {
		out.UpdatedAt = u.UpdatedAt
	}
	return out
}

func conversationNewer(storedAt, status, at string) bool {
	switch {
	case status == "" && at == "":
		return false
	case at == "":
		return storedAt == ""
	case storedAt == "":
		return true
	}
	return parseNumber(at) >= parseNumber(storedAt)
}

// isNumber accepts plain decimal numbers (optionally with an exponent): the
// forms both Go and the Redis scripts parse identically.
func isNumber(s string) bool {
	if strings.Trim(s, "0123456789.eE+-") != "" || s[0] == '+' {
		return false
	}
	f, err := strconv.ParseFloat(s, 64)
	return err == nil && !math.IsInf(f, 0)
}

func parseNumber(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.Inf(-1)
	}
	return f
}
