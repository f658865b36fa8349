package redisstore

import (
	"context"
	"errors"
	"sort"

	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/internal/store"
)

// Webhook endpoints live in one hash, <prefix>webhooks: id -> document.

// PutWebhook implements store.Webhooks.
func (s *Store) PutWebhook(ctx context.Context, w store.Webhook) error {
	if err := w.Validate(); err != nil {
		return err
	}
	return wrap("put webhook "+w.ID, s.rdb.HSet(ctx, s.keys.webhooks(), w.ID, w.Data).Err())
}

// GetWebhook implements store.Webhooks.
func (s *Store) GetWebhook(ctx context.Context, id string) (store.Webhook, error) {
	v, err := s.rdb.HGet(ctx, s.keys.webhooks(), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return store.Webhook{}, wrap("get webhook "+id, store.ErrNotFound)
	}
	if err != nil {
		return store.Webhook{}, wrap("get webhook "+id, err)
	}
	return store.Webhook{ID: id, Data: v}, nil
}

// DeleteWebhook implements store.Webhooks.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	n, err := s.rdb.HDel(ctx, s.keys.webhooks(), id).Result()
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	return wrap("delete webhook "+id, err)
}

// ListWebhooks implements store.Webhooks.
func (s *Store) ListWebhooks(ctx context.Context) ([]store.Webhook, error) {
	all, err := s.rdb.HGetAll(ctx, s.keys.webhooks()).Result()
	if err != nil {
		return nil, wrap("list webhooks", err)
	}
	out := make([]store.Webhook, 0, len(all))
	for id, v := range all {
		out = append(out, store.Webhook{ID: id, Data: []byte(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}
