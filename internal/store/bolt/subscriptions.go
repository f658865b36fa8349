package bolt

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/internal/record"
)

// PutSubscription implements store.Subscriptions.
func (s *Store) PutSubscription(ctx context.Context, sub store.Subscription) (store.Subscription, bool, error) {
	if err := sub.Validate(); err != nil {
		return store.Subscription{}, false, err
	}
	sub = record.NewSubscription(sub, s.now())
	var created bool
	in := sub
	err := s.batch(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSubscriptions)
		old, found, err := getSubscription(b, in.ID)
		if err != nil {
			return err
		}
		sub, created = in, !found
		if found {
			sub.CreatedAt = old.CreatedAt
			sub.LastActivityAt = later(old.LastActivityAt, in.LastActivityAt)
		}
		return putSubscription(b, sub)
	})
	if err != nil {
		return store.Subscription{}, false, fmt.Errorf("store/bolt: put subscription %s: %w", sub.ID, err)
	}
	return sub, created, nil
}

// PutSubscriptions implements store.Subscriptions: one write transaction
// (one fsync) for the whole batch.
func (s *Store) PutSubscriptions(ctx context.Context, subs []store.Subscription) ([]store.PutResult, error) {
	if len(subs) == 0 {
		return nil, nil
	}
	out, err := record.NewSubscriptions(subs, s.now())
	if err != nil {
		return nil, fmt.Errorf("store/bolt: put subscriptions: %w", err)
	}
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSubscriptions)
		for i := range out {
			sub := &out[i].Stored
			old, found, err := getSubscription(b, sub.ID)
			if err != nil {
				return fmt.Errorf("subscription %s: %w", sub.ID, err)
			}
			out[i].Created = !found
			if found {
				sub.CreatedAt = old.CreatedAt
				sub.LastActivityAt = later(old.LastActivityAt, sub.LastActivityAt)
			}
			if err := putSubscription(b, *sub); err != nil {
				return fmt.Errorf("subscription %s: %w", sub.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: put %d subscriptions: %w", len(subs), err)
	}
	return out, nil
}

// GetSubscription implements store.Subscriptions.
func (s *Store) GetSubscription(ctx context.Context, id string) (store.Subscription, error) {
	var sub store.Subscription
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var found bool
		var err error
		sub, found, err = getSubscription(tx.Bucket(bucketSubscriptions), id)
		if err == nil && !found {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return store.Subscription{}, fmt.Errorf("store/bolt: get subscription %s: %w", id, err)
	}
	return sub, nil
}

// GetSubscriptions implements store.Subscriptions: one read transaction.
func (s *Store) GetSubscriptions(ctx context.Context, ids []string) ([]store.Subscription, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var subs []store.Subscription
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		subs = make([]store.Subscription, 0, len(ids))
		b := tx.Bucket(bucketSubscriptions)
		for _, id := range ids {
			sub, found, err := getSubscription(b, id)
			if err != nil {
				return fmt.Errorf("subscription %s: %w", id, err)
			}
			if found {
				subs = append(subs, sub)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: get %d subscriptions: %w", len(ids), err)
	}
	return subs, nil
}

// DeleteSubscription implements store.Subscriptions.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSubscriptions)
		if b.Get([]byte(id)) == nil {
			return store.ErrNotFound
		}
		if err := b.Delete([]byte(id)); err != nil {
			return err
		}
		return deleteCursors(tx, id)
	})
	if err != nil {
		return fmt.Errorf("store/bolt: delete subscription %s: %w", id, err)
	}
	return nil
}

// ListSubscriptions implements store.Subscriptions.
func (s *Store) ListSubscriptions(ctx context.Context, after string, limit int) ([]store.Subscription, string, error) {
	limit = record.Limit(limit)
	var subs []store.Subscription
	var more bool
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		subs, more = nil, false
		c := tx.Bucket(bucketSubscriptions).Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && after != "" && bytes.Equal(k, []byte(after)) {
			k, v = c.Next()
		}
		for ; k != nil; k, v = c.Next() {
			if len(subs) == limit {
				more = true
				return nil
			}
			sub, err := record.DecodeSubscription(v)
			if err != nil {
				return err
			}
			subs = append(subs, sub)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("store/bolt: list subscriptions: %w", err)
	}
	if !more {
		return subs, "", nil
	}
	return subs, subs[len(subs)-1].ID, nil
}

// CountSubscriptions implements store.Subscriptions.
func (s *Store) CountSubscriptions(ctx context.Context) (int, error) {
	var n int
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		n = tx.Bucket(bucketSubscriptions).Stats().KeyN
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store/bolt: count subscriptions: %w", err)
	}
	return n, nil
}

// TouchSubscription implements store.Subscriptions.
func (s *Store) TouchSubscription(ctx context.Context, id string, at time.Time) error {
	at = record.Time(at)
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSubscriptions)
		sub, found, err := getSubscription(b, id)
		switch {
		case err != nil:
			return err
		case !found:
			return store.ErrNotFound
		case !at.After(sub.LastActivityAt):
			return nil
		}
		sub.LastActivityAt = at
		return putSubscription(b, sub)
	})
	if err != nil {
		return fmt.Errorf("store/bolt: touch subscription %s: %w", id, err)
	}
	return nil
}

func getSubscription(b *bbolt.Bucket, id string) (store.Subscription, bool, error) {
	v := b.Get([]byte(id))
	if v == nil {
		return store.Subscription{}, false, nil
	}
	sub, err := record.DecodeSubscription(v)
	return sub, err == nil, err
}

func putSubscription(b *bbolt.Bucket, sub store.Subscription) error {
	v, err := record.EncodeSubscription(sub)
	if err != nil {
		return err
	}
	return b.Put([]byte(sub.ID), v)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
