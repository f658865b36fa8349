package bolt

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/relayhq/relay/internal/store"
)

// PutWebhook implements store.Webhooks.
func (s *Store) PutWebhook(ctx context.Context, w store.Webhook) error {
	if err := w.Validate(); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketWebhooks).Put([]byte(w.ID), bytes.Clone(w.Data))
	})
}

// GetWebhook implements store.Webhooks.
func (s *Store) GetWebhook(ctx context.Context, id string) (store.Webhook, error) {
	var w store.Webhook
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketWebhooks).Get([]byte(id))
		if v == nil {
			return fmt.Errorf("store/bolt: webhook %s: %w", id, store.ErrNotFound)
		}
		w = store.Webhook{ID: id, Data: bytes.Clone(v)}
		return nil
	})
	return w, err
}

// DeleteWebhook implements store.Webhooks.
func (s *Store) DeleteWebhook(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketWebhooks)
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("store/bolt: webhook %s: %w", id, store.ErrNotFound)
		}
		return b.Delete([]byte(id))
	})
}

// ListWebhooks implements store.Webhooks.
func (s *Store) ListWebhooks(ctx context.Context) ([]store.Webhook, error) {
	var out []store.Webhook
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketWebhooks).ForEach(func(k, v []byte) error {
			out = append(out, store.Webhook{ID: string(k), Data: bytes.Clone(v)})
			return nil
		})
	})
	return out, err
}
