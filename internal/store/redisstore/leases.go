package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/internal/record"
)

// AcquireLease implements store.Leases.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	_, ok, err := s.ClaimLease(ctx, name, holder, ttl)
	return ok, err
}

// ClaimLease implements store.Leases.
func (s *Store) ClaimLease(ctx context.Context, name, holder string, ttl time.Duration) (store.Lease, bool, error) {
	if err := leaseArgs(name, holder, ttl); err != nil {
		return store.Lease{}, false, err
	}
	keys := []string{s.keys.lease(name), s.keys.fences(), s.keys.leaseSince()}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	res, err := acquireLeaseScript.Run(ctx, s.rdb, keys, holder, millis(ttl), name, now).Slice()
	if err != nil {
		return store.Lease{}, false, wrap("acquire lease "+name, err)
	}
	if len(res) != 4 {
		return store.Lease{}, false, wrap("acquire lease "+name, fmt.Errorf("unexpected reply of %d values", len(res)))
	}
	h, _ := res[1].(string)
	token, _ := res[2].(int64)
	since, _ := res[3].(int64)
	l := store.Lease{Name: name, Holder: h, Token: token, Since: time.UnixMilli(since)}
	return l, res[0] == int64(1), nil
}

// RenewLease implements store.Leases.
func (s *Store) RenewLease(ctx context.Context, l store.Lease, ttl time.Duration) (bool, error) {
	if err := leaseArgs(l.Name, l.Holder, ttl); err != nil {
		return false, err
	}
	keys := []string{s.keys.lease(l.Name), s.keys.fences()}
	n, err := renewLeaseScript.Run(ctx, s.rdb, keys, l.Holder, millis(ttl), l.Name, l.Token).Int()
	return n == 1, wrap("renew lease "+l.Name, err)
}

// ReleaseHeld implements store.Leases.
func (s *Store) ReleaseHeld(ctx context.Context, l store.Lease) error {
	if err := record.Name("lease name", l.Name); err != nil {
		return err
	}
	keys := []string{s.keys.lease(l.Name), s.keys.fences()}
	n, err := releaseHeldScript.Run(ctx, s.rdb, keys, l.Holder, l.Name, l.Token).Int()
	if err == nil && n == 0 {
		err = store.ErrNotHolder
	}
	return wrap("release lease "+l.Name, err)
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

// PinSetting implements store.Leases: SET NX, then GET.
func (s *Store) PinSetting(ctx context.Context, name, value string) (string, error) {
	if err := record.Name("setting name", name); err != nil {
		return "", err
	}
	key := s.keys.setting(name)
	if err := s.rdb.SetNX(ctx, key, value, 0).Err(); err != nil {
		return "", wrap("setting "+name, err)
	}
	v, err := s.rdb.Get(ctx, key).Result()
	return v, wrap("setting "+name, err)
}
