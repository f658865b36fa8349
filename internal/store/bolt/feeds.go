package bolt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/relayhq/relay/internal/store"
)

// PutFeed implements store.Feeds.
func (s *Store) PutFeed(ctx context.Context, f store.Feed) (store.Feed, bool, error) {
	if err := f.Validate(); err != nil {
		return store.Feed{}, false, err
	}
	var created bool
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketFeeds)
		old, found, err := getFeed(b, f.ID)
		if err != nil {
			return err
		}
		created = !found
		if found {
			f = store.NewFeedRecord(f, &old, s.now())
		} else {
			f = store.NewFeedRecord(f, nil, s.now())
		}
		return putFeed(b, f)
	})
	if err != nil {
		return store.Feed{}, false, fmt.Errorf("store/bolt: put feed %s: %w", f.ID, err)
	}
	return f, created, nil
}

// GetFeed implements store.Feeds.
func (s *Store) GetFeed(ctx context.Context, id string) (store.Feed, error) {
	var f store.Feed
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var found bool
		var err error
		f, found, err = getFeed(tx.Bucket(bucketFeeds), id)
		if err == nil && !found {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return store.Feed{}, fmt.Errorf("store/bolt: get feed %s: %w", id, err)
	}
	return f, nil
}

// ListFeeds implements store.Feeds.
func (s *Store) ListFeeds(ctx context.Context) ([]store.Feed, error) {
	var out []store.Feed
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketFeeds).ForEach(func(_, v []byte) error {
			var f store.Feed
			if err := json.Unmarshal(v, &f); err != nil {
				return err
			}
			out = append(out, f)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: list feeds: %w", err)
	}
	return out, nil
}

// DeleteFeed implements store.Feeds.
func (s *Store) DeleteFeed(ctx context.Context, id string) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketFeeds)
		if b.Get([]byte(id)) == nil {
			return store.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("store/bolt: delete feed %s: %w", id, err)
	}
	return nil
}

// AdvanceFeedCursor implements store.Feeds.
func (s *Store) AdvanceFeedCursor(ctx context.Context, id string, accountID, messageID int64) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketFeeds)
		f, found, err := getFeed(b, id)
		switch {
		case err != nil:
			return err
		case !found:
			return store.ErrNotFound
		}
		if cur, ok := f.Cursors[accountID]; ok && cur >= messageID {
			return nil
		}
		if f.Cursors == nil {
			f.Cursors = make(map[int64]int64)
		}
		f.Cursors[accountID] = messageID
		return putFeed(b, f)
	})
	if err != nil {
		return fmt.Errorf("store/bolt: advance feed cursor %s: %w", id, err)
	}
	return nil
}

func getFeed(b *bbolt.Bucket, id string) (store.Feed, bool, error) {
	v := b.Get([]byte(id))
	if v == nil {
		return store.Feed{}, false, nil
	}
	var f store.Feed
	if err := json.NewDecoder(bytes.NewReader(v)).Decode(&f); err != nil {
		return store.Feed{}, false, err
	}
	return f, true, nil
}

func putFeed(b *bbolt.Bucket, f store.Feed) error {
	v, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return b.Put([]byte(f.ID), v)
}
