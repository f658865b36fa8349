package bolt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/internal/record"
)

// cursorRecord is the stored form of a cursor; the key holds the ids.
type cursorRecord struct {
	LastMessageID int64  `json:"last_message_id"`
	Status        string `json:"status,omitempty"`
	UpdatedAt     string `json:"updated_at,omitempty"`
}

// GetCursor implements store.Cursors.
func (s *Store) GetCursor(ctx context.Context, subscriptionID, conversationID string) (store.Cursor, error) {
	var c store.Cursor
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketCursors).Bucket([]byte(subscriptionID))
		var found bool
		var err error
		if b != nil {
			c, found, err = getCursor(b, subscriptionID, conversationID)
		}
		if err == nil && !found {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return store.Cursor{}, fmt.Errorf("store/bolt: get cursor %s/%s: %w", subscriptionID, conversationID, err)
	}
	return c, nil
}

// PutCursor implements store.Cursors.
func (s *Store) PutCursor(ctx context.Context, c store.Cursor) (store.Cursor, error) {
	if err := c.Validate(); err != nil {
		return store.Cursor{}, err
	}
	var out store.Cursor
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketSubscriptions).Get([]byte(c.SubscriptionID)) == nil {
			return store.ErrNotFound
		}
		b, err := tx.Bucket(bucketCursors).CreateBucketIfNotExists([]byte(c.SubscriptionID))
		if err != nil {
			return err
		}
		old, _, err := getCursor(b, c.SubscriptionID, c.ConversationID)
		if err != nil {
			return err
		}
		out = old.Advance(c)
		return putCursor(b, out)
	})
	if err != nil {
		return store.Cursor{}, fmt.Errorf("store/bolt: put cursor %s/%s: %w", c.SubscriptionID, c.ConversationID, err)
	}
	return out, nil
}

// ListCursors implements store.Cursors.
func (s *Store) ListCursors(ctx context.Context, subscriptionID string) ([]store.Cursor, error) {
	var cs []store.Cursor
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		cs = nil
		b := tx.Bucket(bucketCursors).Bucket([]byte(subscriptionID))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			c, err := decodeCursor(subscriptionID, string(k), v)
			cs = append(cs, c)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: list cursors %s: %w", subscriptionID, err)
	}
	slices.SortFunc(cs, func(a, b store.Cursor) int {
		return record.CompareConversationIDs(a.ConversationID, b.ConversationID)
	})
	return cs, nil
}

// DeleteCursors implements store.Cursors.
func (s *Store) DeleteCursors(ctx context.Context, subscriptionID string) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error { return deleteCursors(tx, subscriptionID) })
	if err != nil {
		return fmt.Errorf("store/bolt: delete cursors %s: %w", subscriptionID, err)
	}
	return nil
}

func deleteCursors(tx *bbolt.Tx, subscriptionID string) error {
	err := tx.Bucket(bucketCursors).DeleteBucket([]byte(subscriptionID))
	if errors.Is(err, bbolt.ErrBucketNotFound) {
		return nil
	}
	return err
}

func getCursor(b *bbolt.Bucket, subscriptionID, conversationID string) (store.Cursor, bool, error) {
	v := b.Get([]byte(conversationID))
	if v == nil {
		return store.Cursor{SubscriptionID: subscriptionID, ConversationID: conversationID}, false, nil
	}
	c, err := decodeCursor(subscriptionID, conversationID, v)
	return c, err == nil, err
}

func putCursor(b *bbolt.Bucket, c store.Cursor) error {
	v, err := json.Marshal(cursorRecord{LastMessageID: c.LastMessageID, Status: c.Status, UpdatedAt: c.UpdatedAt})
	if err != nil {
		return err
	}
	return b.Put([]byte(c.ConversationID), v)
}

func decodeCursor(subscriptionID, conversationID string, v []byte) (store.Cursor, error) {
	var r cursorRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return store.Cursor{}, fmt.Errorf("corrupt cursor record: %w", err)
	}
	return store.Cursor{
		SubscriptionID: subscriptionID,
		ConversationID: conversationID,
		LastMessageID:  r.LastMessageID,
		Status:         r.Status,
		UpdatedAt:      r.UpdatedAt,
	}, nil
}
