package catchup

import (
	"log/slog"
	"time"

	"github.com/relayhq/relay/internal/fanout"
)

// Target is what catch-up needs of a subscription: the contact inbox to
// read through the public API, and the record whose routing ids (registered,
// and learned from live events) its replays carry. SourceID is a
// credential: LogValue leaves it out.
type Target struct {
	ID              string
	InboxIdentifier string
	SourceID        string
	CreatedAt       time.Time
	Sub             *fanout.Sub // nil: no routing ids known
	// State is catch-up's state of the subscription, owned by its record:
	// every Target of one subscription points to the same State. Required:
	// the Catchup's methods ignore a Target without one.
	State *State
}

// CatchUp reports whether the subscription can be caught up and verified
// through the public API.
func (t *Target) CatchUp() bool { return t.InboxIdentifier != "" && t.SourceID != "" }

// Hints are the record's routing ids.
func (t *Target) Hints() fanout.Hints {
	if t.Sub != nil {
		return t.Sub.Hints()
	}
	return fanout.Hints{}
}

// LogValue implements slog.LogValuer without the source_id.
func (t *Target) LogValue() slog.Value {
	h := t.Hints()
	return slog.GroupValue(slog.String("subscription", t.ID), slog.String("contact", h.ContactID),
		slog.String("account", h.AccountID))
}
