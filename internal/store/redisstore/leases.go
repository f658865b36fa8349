package redisstore

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/internal/record"
)

// AcquireLease implements store.Leases.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if err := leaseArgs(name, holder, ttl); err != nil {
		return false, err
	}
	n, err := acquireLeaseScript.Run(ctx, s.rdb, []string{s.keys.lease(name)}, holder, millis(ttl)).Int()
	return n == 1, wrap("acquire lease "+name, err)
}

// ReleaseLease implements store.Leases.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := record.Name("lease name", name); err != nil {
		return err
	}
	n, err := releaseLeaseScript.Run(ctx, s.rdb, []string{s.keys.lease(name)}, holder).Int()
	if err == nil && n == 0 {
		err = store.ErrNotHolder
	}
	return wrap("release lease "+name, err)
}

// LeaseHolder implements store.Leases.
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, error) {
	h, err := s.rdb.Get(ctx, s.keys.lease(name)).Result()
	if errors.Is(err, redis.Nil) {
		err = store.ErrNotFound
	}
	return h, wrap("lease holder "+name, err)
}

// Heartbeat implements store.Leases.
func (s *Store) Heartbeat(ctx context.Context, member string, ttl time.Duration) error {
	if err := record.Name("member", member); err != nil {
		return err
	}
	if err := record.TTL(ttl); err != nil {
		return err
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.keys.member(member), "1", ttl)
		p.SAdd(ctx, s.keys.members(), member)
		return nil
	})
	return wrap("heartbeat "+member, err)
}

// Leave implements store.Leases.
func (s *Store) Leave(ctx context.Context, member string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.keys.member(member))
		p.SRem(ctx, s.keys.members(), member)
		return nil
	})
	return wrap("leave "+member, err)
}

// Members implements store.Leases. Names whose heartbeat expired are
// dropped from the set on the way.
func (s *Store) Members(ctx context.Context) ([]string, error) {
	names, err := s.rdb.SMembers(ctx, s.keys.members()).Result()
	if err != nil {
		return nil, wrap("members", err)
	}
	alive, err := s.alive(ctx, names)
	if err != nil {
		return nil, wrap("members", err)
	}
	var members []string
	for i, name := range names {
		if alive[i] {
			members = append(members, name)
			continue
		}
		err := pruneMemberScript.Run(ctx, s.rdb, []string{s.keys.members(), s.keys.member(name)}, name).Err()
		if err != nil {
			return nil, wrap("members", err)
		}
	}
	slices.Sort(members)
	return members, nil
}

// alive reports, for each name, whether its heartbeat key exists.
func (s *Store) alive(ctx context.Context, names []string) ([]bool, error) {
	cmds := make([]*redis.IntCmd, len(names))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, name := range names {
			cmds[i] = p.Exists(ctx, s.keys.member(name))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	alive := make([]bool, len(names))
	for i, cmd := range cmds {
		alive[i] = cmd.Val() == 1
	}
	return alive, nil
}

func leaseArgs(name, holder string, ttl time.Duration) error {
	if err := record.Name("lease name", name); err != nil {
		return err
	}
	if err := record.Name("lease holder", holder); err != nil {
		return err
	}
	return record.TTL(ttl)
}
