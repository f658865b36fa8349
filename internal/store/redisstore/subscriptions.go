package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/internal/record"
)

// PutSubscription implements store.Subscriptions.
func (s *Store) PutSubscription(ctx context.Context, sub store.Subscription) (store.Subscription, bool, error) {
	if err := sub.Validate(); err != nil {
		return store.Subscription{}, false, err
	}
	sub = record.NewSubscription(sub, s.now())
	data, err := encodeData(sub)
	if err != nil {
		return store.Subscription{}, false, wrap("put subscription "+sub.ID, err)
	}
	res, err := putSubscriptionScript.Run(ctx, s.rdb,
		[]string{s.keys.sub(sub.ID), s.keys.subs()},
		sub.ID, data, record.Micros(sub.CreatedAt), record.Micros(sub.LastActivityAt)).Slice()
	if err != nil {
		return store.Subscription{}, false, wrap("put subscription "+sub.ID, err)
	}
	created, stamps, err := parsePutReply(res)
	if err != nil {
		return store.Subscription{}, false, wrap("put subscription "+sub.ID, err)
	}
	sub.CreatedAt, sub.LastActivityAt = stamps[0], stamps[1]
	return sub, created, nil
}

// PutSubscriptions implements store.Subscriptions: one script, so one
// round trip and atomic for other clients.
func (s *Store) PutSubscriptions(ctx context.Context, subs []store.Subscription) ([]store.PutResult, error) {
	if len(subs) == 0 {
		return nil, nil
	}
	op := fmt.Sprintf("put %d subscriptions", len(subs))
	out, err := record.NewSubscriptions(subs, s.now())
	if err != nil {
		return nil, wrap("put subscriptions", err)
	}
	keys := make([]string, 0, len(out)+1)
	args := make([]any, 0, 4*len(out))
	for _, r := range out {
		data, err := encodeData(r.Stored)
		if err != nil {
			return nil, wrap(op, fmt.Errorf("subscription %s: %w", r.Stored.ID, err))
		}
		keys = append(keys, s.keys.sub(r.Stored.ID))
		args = append(args, r.Stored.ID, data, record.Micros(r.Stored.CreatedAt), record.Micros(r.Stored.LastActivityAt))
	}
	keys = append(keys, s.keys.subs())
	res, err := putSubscriptionsScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, wrap(op, err)
	}
	if len(res) != 3*len(out) {
		return nil, wrap(op, fmt.Errorf("unexpected script reply of %d values", len(res)))
	}
	for i := range out {
		created, stamps, err := parsePutReply(res[3*i : 3*i+3])
		if err != nil {
			return nil, wrap(op, err)
		}
		out[i].Created = created
		out[i].Stored.CreatedAt, out[i].Stored.LastActivityAt = stamps[0], stamps[1]
	}
	return out, nil
}

func parsePutReply(res []any) (bool, [2]time.Time, error) {
	var stamps [2]time.Time
	if len(res) != 3 {
		return false, stamps, fmt.Errorf("unexpected script reply of %d values", len(res))
	}
	created, _ := res[0].(int64)
	for i, v := range res[1:] {
		t, err := parseMicros(v)
		if err != nil {
			return false, stamps, err
		}
		stamps[i] = t
	}
	return created == 1, stamps, nil
}

// GetSubscription implements store.Subscriptions.
func (s *Store) GetSubscription(ctx context.Context, id string) (store.Subscription, error) {
	vals, err := s.rdb.HMGet(ctx, s.keys.sub(id), "d", "c", "a").Result()
	if err != nil {
		return store.Subscription{}, wrap("get subscription "+id, err)
	}
	sub, found, err := decodeHash(vals)
	if err == nil && !found {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Subscription{}, wrap("get subscription "+id, err)
	}
	return sub, nil
}

// GetSubscriptions implements store.Subscriptions: one pipelined round trip.
func (s *Store) GetSubscriptions(ctx context.Context, ids []string) ([]store.Subscription, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	subs, err := s.getMany(ctx, ids)
	if err != nil {
		return nil, wrap(fmt.Sprintf("get %d subscriptions", len(ids)), err)
	}
	return subs, nil
}

// DeleteSubscription implements store.Subscriptions.
func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	n, err := deleteSubscriptionScript.Run(ctx, s.rdb,
		[]string{s.keys.sub(id), s.keys.cursors(id), s.keys.subs()}, id).Int()
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	return wrap("delete subscription "+id, err)
}

// ListSubscriptions implements store.Subscriptions.
func (s *Store) ListSubscriptions(ctx context.Context, after string, limit int) ([]store.Subscription, string, error) {
	limit = record.Limit(limit)
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: s.keys.subs(), Start: lexStart(after), Stop: "+", ByLex: true, Count: int64(limit) + 1,
	}).Result()
	if err != nil {
		return nil, "", wrap("list subscriptions", err)
	}
	next := ""
	if len(ids) > limit {
		ids, next = ids[:limit], ids[limit-1]
	}
	subs, err := s.getMany(ctx, ids)
	if err != nil {
		return nil, "", wrap("list subscriptions", err)
	}
	return subs, next, nil
}

func lexStart(after string) string {
	if after == "" {
		return "-"
	}
	return "(" + after
}

// getMany reads the listed subscriptions in one round trip, skipping those
// deleted since the index was read.
func (s *Store) getMany(ctx context.Context, ids []string) ([]store.Subscription, error) {
	cmds := make([]*redis.SliceCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, s.keys.sub(id), "d", "c", "a")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	subs := make([]store.Subscription, 0, len(ids))
	for _, cmd := range cmds {
		sub, found, err := decodeHash(cmd.Val())
		if err != nil {
			return nil, err
		}
		if found {
			subs = append(subs, sub)
		}
	}
	return subs, nil
}

// CountSubscriptions implements store.Subscriptions.
func (s *Store) CountSubscriptions(ctx context.Context) (int, error) {
	n, err := s.rdb.ZCard(ctx, s.keys.subs()).Result()
	return int(n), wrap("count subscriptions", err)
}

// TouchSubscription implements store.Subscriptions.
func (s *Store) TouchSubscription(ctx context.Context, id string, at time.Time) error {
	n, err := touchSubscriptionScript.Run(ctx, s.rdb, []string{s.keys.sub(id)}, record.Micros(record.Time(at))).Int()
	if err == nil && n == 0 {
		err = store.ErrNotFound
	}
	return wrap("touch subscription "+id, err)
}

// encodeData returns the "d" field: the record without the two timestamps
// the script owns.
func encodeData(sub store.Subscription) ([]byte, error) {
	sub.CreatedAt, sub.LastActivityAt = time.Time{}, time.Time{}
	return record.EncodeSubscriptionJSON(sub)
}

// decodeHash parses the HMGET d c a reply.
func decodeHash(vals []any) (store.Subscription, bool, error) {
	if len(vals) != 3 || vals[0] == nil {
		return store.Subscription{}, false, nil
	}
	data, _ := vals[0].(string)
	sub, err := record.DecodeSubscription([]byte(data))
	if err != nil {
		return store.Subscription{}, false, err
	}
	if sub.CreatedAt, err = parseMicros(vals[1]); err != nil {
		return store.Subscription{}, false, err
	}
	if sub.LastActivityAt, err = parseMicros(vals[2]); err != nil {
		return store.Subscription{}, false, err
	}
	return sub, true, nil
}

var errCorrupt = errors.New("corrupt timestamp")

func parseMicros(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, errCorrupt
	}
	us, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, errCorrupt
	}
	return record.FromMicros(us), nil
}
