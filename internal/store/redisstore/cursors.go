package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/internal/record"
)

// GetCursor implements store.Cursors.
func (s *Store) GetCursor(ctx context.Context, subscriptionID, conversationID string) (store.Cursor, error) {
	op := "get cursor " + subscriptionID + "/" + conversationID
	v, err := s.rdb.HGet(ctx, s.keys.cursors(subscriptionID), conversationID).Result()
	if errors.Is(err, redis.Nil) {
		return store.Cursor{}, wrap(op, store.ErrNotFound)
	}
	if err != nil {
		return store.Cursor{}, wrap(op, err)
	}
	c, err := decodeCursor(subscriptionID, conversationID, v)
	return c, wrap(op, err)
}

// PutCursor implements store.Cursors.
func (s *Store) PutCursor(ctx context.Context, c store.Cursor) (store.Cursor, error) {
	if err := c.Validate(); err != nil {
		return store.Cursor{}, err
	}
	op := "put cursor " + c.SubscriptionID + "/" + c.ConversationID
	v, err := putCursorScript.Run(ctx, s.rdb,
		[]string{s.keys.cursors(c.SubscriptionID), s.keys.sub(c.SubscriptionID)},
		c.ConversationID, c.LastMessageID, c.Status, c.UpdatedAt).Text()
	if errors.Is(err, redis.Nil) {
		return store.Cursor{}, wrap(op, store.ErrNotFound)
	}
	if err != nil {
		return store.Cursor{}, wrap(op, err)
	}
	out, err := decodeCursor(c.SubscriptionID, c.ConversationID, v)
	return out, wrap(op, err)
}

// ListCursors implements store.Cursors.
func (s *Store) ListCursors(ctx context.Context, subscriptionID string) ([]store.Cursor, error) {
	m, err := s.rdb.HGetAll(ctx, s.keys.cursors(subscriptionID)).Result()
	if err != nil {
		return nil, wrap("list cursors "+subscriptionID, err)
	}
	var cs []store.Cursor
	for conv, v := range m {
		c, err := decodeCursor(subscriptionID, conv, v)
		if err != nil {
			return nil, wrap("list cursors "+subscriptionID, err)
		}
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b store.Cursor) int {
		return record.CompareConversationIDs(a.ConversationID, b.ConversationID)
	})
	return cs, nil
}

// DeleteCursors implements store.Cursors.
func (s *Store) DeleteCursors(ctx context.Context, subscriptionID string) error {
	return wrap("delete cursors "+subscriptionID, s.rdb.Del(ctx, s.keys.cursors(subscriptionID)).Err())
}

// decodeCursor parses "<message id>|<status>|<updated_at>".
func decodeCursor(subscriptionID, conversationID, v string) (store.Cursor, error) {
	parts := strings.SplitN(v, "|", 3)
	if len(parts) != 3 {
		return store.Cursor{}, fmt.Errorf("corrupt cursor value")
	}
	id, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return store.Cursor{}, fmt.Errorf("corrupt cursor message id")
	}
	return store.Cursor{
		SubscriptionID: subscriptionID,
		ConversationID: conversationID,
		LastMessageID:  id,
		Status:         parts[1],
		UpdatedAt:      parts[2],
	}, nil
}
