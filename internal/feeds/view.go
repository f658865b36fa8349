package feeds

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/relayhq/relay/internal/store"
)

// Feed is a feed as the HTTP API shows it: never a token.
type Feed struct {
	ID        string    `json:"id"`
	UserID    int64     `json:"user_id"`
	Accounts  []Account `json:"accounts"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Account is one account of a feed: its subscription and catch-up.
type Account struct {
	ID             int64  `json:"id"`
	SubscriptionID string `json:"subscription_id"`
	// State is the subscription's state (pending, confirmed, retrying,
	// parked, invalid).
	State    string `json:"state"`
	Confirms int    `json:"confirms"`
	Events   uint64 `json:"events"`
	// CaughtUp: caught up since the last confirm, without a gap since.
	CaughtUp bool `json:"caught_up"`
	// Cursor is the highest message id the catch-up covered; null before
	// the first confirm.
	Cursor *int64 `json:"cursor"`
}

// Get returns one feed.
func (m *Manager) Get(ctx context.Context, id string) (Feed, error) {
	rec, err := m.opts.Store.GetFeed(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Feed{}, ErrNotFound
	}
	if err != nil {
		return Feed{}, err
	}
	return m.view(rec), nil
}

// List returns every feed, ordered by id.
func (m *Manager) List(ctx context.Context) ([]Feed, error) {
	recs, err := m.opts.Store.ListFeeds(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Feed, 0, len(recs))
	for _, rec := range recs {
		out = append(out, m.view(rec))
	}
	slices.SortFunc(out, func(a, b Feed) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (m *Manager) view(rec store.Feed) Feed {
	f := Feed{ID: rec.ID, UserID: rec.UserID, Accounts: []Account{}, CreatedAt: rec.CreatedAt, UpdatedAt: rec.UpdatedAt}
	for _, acc := range rec.Accounts {
		a := Account{ID: acc, State: "pending"}
		if c, ok := rec.Cursors[acc]; ok {
			a.Cursor = &c
		}
		m.mu.Lock()
		if fd := m.feeds[rec.ID]; fd != nil && fd.subs[acc] != nil {
			s := fd.subs[acc]
			a.SubscriptionID, a.CaughtUp = s.ID, s.clean
		}
		m.mu.Unlock()
		if info, ok := m.opts.Pool.Get(a.SubscriptionID); ok {
			a.State, a.Confirms, a.Events = info.State.String(), info.Confirms, info.Events
		}
		f.Accounts = append(f.Accounts, a)
	}
	return f
}
