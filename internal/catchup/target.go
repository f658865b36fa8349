package catchup

import (
	"log/slog"
	"time"

	"github.com/relayhq/relay/internal/fanout"
)

// Target is what catch-up needs of a subscription: the contact inbox to
// read through the public API, and the routing ids of its events. SourceID
// is a credential: LogValue leaves it out.
type Target struct {
	ID              string
	InboxIdentifier string
	SourceID        string
	ContactID       string
	InboxID         string
	AccountID       string
	CreatedAt       time.Time
	// Sub is the subscription's record, when it is live: its ids learned
	// from live events complete the registered ones.
	Sub *fanout.Sub
}

// CatchUp reports whether the subscription can be caught up and verified
// through the public API.
func (t *Target) CatchUp() bool { return t.InboxIdentifier != "" && t.SourceID != "" }

// Hints are the routing ids: the live record's, which include the
// registered ones, or the registered ones alone.
func (t *Target) Hints() fanout.Hints {
	if t.Sub != nil {
		return t.Sub.Hints()
	}
	return fanout.Hints{AccountID: t.AccountID, InboxID: t.InboxID, ContactID: t.ContactID}
}

// LogValue implements slog.LogValuer without the source_id.
func (t *Target) LogValue() slog.Value {
	h := t.Hints()
	return slog.GroupValue(slog.String("subscription", t.ID), slog.String("contact", h.ContactID),
		slog.String("account", h.AccountID))
}
