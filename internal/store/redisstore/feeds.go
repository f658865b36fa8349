package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/internal/store"
)

// Feeds live in one hash, <prefix>feeds (id -> JSON record without
// cursors); each feed's cursors in <prefix>feedcur:<id> (account id ->
// message id).

func (k keys) feeds() string                { return string(k) + "feeds" }
func (k keys) feedCursors(id string) string { return string(k) + "feedcur:" + id }

// advanceFeedCursor sets a cursor, or moves it forward; -1 means no such
// feed.
var advanceFeedCursor = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -1 end
local cur = redis.call('HGET', KEYS[2], ARGV[2])
if not cur or tonumber(cur) < tonumber(ARGV[3]) then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
return 0`)

// PutFeed implements store.Feeds: an optimistic transaction on the feeds
// hash keeps CreatedAt.
func (s *Store) PutFeed(ctx context.Context, f store.Feed) (store.Feed, bool, error) {
	if err := f.Validate(); err != nil {
		return store.Feed{}, false, err
	}
	var created bool
	var stored store.Feed
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		old, found, err := s.readFeed(ctx, tx, f.ID)
		if err != nil {
			return err
		}
		created = !found
		if found {
			stored = store.NewFeedRecord(f, &old, s.now())
		} else {
			stored = store.NewFeedRecord(f, nil, s.now())
		}
		rec := stored
		rec.Cursors = nil
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			return p.HSet(ctx, s.keys.feeds(), f.ID, v).Err()
		})
		return err
	}, s.keys.feeds())
	if err != nil {
		return store.Feed{}, false, wrap("put feed "+f.ID, err)
	}
	return stored, created, nil
}

func (s *Store) readFeed(ctx context.Context, c redis.Cmdable, id string) (store.Feed, bool, error) {
	v, err := c.HGet(ctx, s.keys.feeds(), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return store.Feed{}, false, nil
	}
	if err != nil {
		return store.Feed{}, false, err
	}
	var f store.Feed
	if err := json.Unmarshal(v, &f); err != nil {
		return store.Feed{}, false, err
	}
	cur, err := c.HGetAll(ctx, s.keys.feedCursors(id)).Result()
	if err != nil {
		return store.Feed{}, false, err
	}
	for a, m := range cur {
		acc, err1 := strconv.ParseInt(a, 10, 64)
		msg, err2 := strconv.ParseInt(m, 10, 64)
		if err1 == nil && err2 == nil {
			if f.Cursors == nil {
				f.Cursors = make(map[int64]int64)
			}
			f.Cursors[acc] = msg
		}
	}
	return f, true, nil
}

// GetFeed implements store.Feeds.
func (s *Store) GetFeed(ctx context.Context, id string) (store.Feed, error) {
	f, found, err := s.readFeed(ctx, s.rdb, id)
	if err == nil && !found {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Feed{}, wrap("get feed "+id, err)
	}
	return f, nil
}

// ListFeeds implements store.Feeds.
func (s *Store) ListFeeds(ctx context.Context) ([]store.Feed, error) {
	ids, err := s.rdb.HKeys(ctx, s.keys.feeds()).Result()
	if err != nil {
		return nil, wrap("list feeds", err)
	}
	slices.Sort(ids)
	out := make([]store.Feed, 0, len(ids))
	for _, id := range ids {
		f, found, err := s.readFeed(ctx, s.rdb, id)
		if err != nil {
			return nil, wrap("list feeds", err)
		}
		if found {
			out = append(out, f)
		}
	}
	return out, nil
}

// DeleteFeed implements store.Feeds.
func (s *Store) DeleteFeed(ctx context.Context, id string) error {
	n, err := s.rdb.HDel(ctx, s.keys.feeds(), id).Result()
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	if err == nil {
		err = s.rdb.Del(ctx, s.keys.feedCursors(id)).Err()
	}
	return wrap("delete feed "+id, err)
}

// AdvanceFeedCursor implements store.Feeds.
func (s *Store) AdvanceFeedCursor(ctx context.Context, id string, accountID, messageID int64) error {
	if id == "" || messageID < 0 || strings.ContainsAny(id, " ") {
		return fmt.Errorf("%w: feed cursor", store.ErrInvalid)
	}
	r, err := advanceFeedCursor.Run(ctx, s.rdb, []string{s.keys.feeds(), s.keys.feedCursors(id)},
		id, strconv.FormatInt(accountID, 10), strconv.FormatInt(messageID, 10)).Int()
	if err == nil && r < 0 {
		err = store.ErrNotFound
	}
	return wrap("advance feed cursor "+id, err)
}
