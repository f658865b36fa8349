package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Feeds stores account feeds: Chatwoot users' access tokens whose
// subscriptions carry every event of their accounts, and how far each
// account was caught up.
type Feeds interface {
	// PutFeed inserts or replaces the feed with f.ID and returns the stored
	// record and whether it was created. CreatedAt is kept from the first
	// put; UpdatedAt is set to now; stored cursors are kept (f.Cursors is
	// ignored: AdvanceFeedCursor moves them).
	PutFeed(ctx context.Context, f Feed) (stored Feed, created bool, err error)
	// GetFeed returns the feed or ErrNotFound.
	GetFeed(ctx context.Context, id string) (Feed, error)
	// ListFeeds returns every feed, ordered by id. Feeds are few (one per
	// Chatwoot user an operator configures).
	ListFeeds(ctx context.Context) ([]Feed, error)
	// DeleteFeed removes the feed and its cursors, or returns ErrNotFound.
	DeleteFeed(ctx context.Context, id string) error
	// AdvanceFeedCursor sets the feed's cursor of an account to messageID
	// (0 included) when it has none, or moves it forward (never back),
	// atomically; it returns ErrNotFound when the feed does not exist.
	AdvanceFeedCursor(ctx context.Context, id string, accountID, messageID int64) error
}

// Feed is an account feed. AccessToken and PubsubToken are credentials:
// LogValue, String and GoString redact them.
type Feed struct {
	ID          string `json:"id"` // stable hash of AccessToken, computed by the registrant
	AccessToken string `json:"access_token"`
	// PubsubToken is the user's pubsub_token from the profile (a
	// credential too); "" until read.
	PubsubToken string  `json:"pubsub_token,omitempty"`
	UserID      int64   `json:"user_id,omitempty"`  // from the profile; 0 until read
	Accounts    []int64 `json:"accounts,omitempty"` // from the profile
	// Cursors holds, per account id, the highest message id the feed's
	// catch-up has covered; an account without an entry was never caught
	// up (0 is a cursor: the account had no message).
	Cursors   map[int64]int64 `json:"cursors,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// Validate checks what every backend requires.
func (f Feed) Validate() error {
	if f.ID == "" || f.AccessToken == "" {
		return fmt.Errorf("%w: feed needs an id and an access token", ErrInvalid)
	}
	return nil
}

// LogValue implements slog.LogValuer without the access token.
func (f Feed) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", f.ID), slog.Int64("user_id", f.UserID),
		slog.String("access_token", redactNonEmpty(f.AccessToken)), slog.String("pubsub_token", redactNonEmpty(f.PubsubToken)))
}

func (f Feed) String() string {
	return fmt.Sprintf("Feed{ID:%s UserID:%d Accounts:%v AccessToken:%s PubsubToken:%s}",
		f.ID, f.UserID, f.Accounts, redactNonEmpty(f.AccessToken), redactNonEmpty(f.PubsubToken))
}

// GoString implements fmt.GoStringer like String.
func (f Feed) GoString() string { return f.String() }

// NewFeedRecord prepares f for a put at now given the stored record (nil
// when there is none): what every backend does in its transaction.
func NewFeedRecord(f Feed, old *Feed, now time.Time) Feed {
	f.UpdatedAt, f.CreatedAt, f.Cursors = now.UTC(), now.UTC(), nil
	if old != nil {
		f.CreatedAt, f.Cursors = old.CreatedAt, old.Cursors
	}
	return f
}
