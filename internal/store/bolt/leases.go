package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/internal/record"
)

// leaseRecord is the stored form of a lease and of a heartbeat (no holder).
type leaseRecord struct {
	Holder    string    `json:"holder,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	Token     int64     `json:"token,omitempty"` // fencing token of this grant
	Since     time.Time `json:"since,omitzero"`  // when this grant was made
}

// AcquireLease implements store.Leases.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	_, ok, err := s.ClaimLease(ctx, name, holder, ttl)
	return ok, err
}

// ClaimLease implements store.Leases. The last token granted per name is
// kept in its own bucket, which the sweep leaves alone, so tokens keep
// growing after a lease expires and is swept.
func (s *Store) ClaimLease(ctx context.Context, name, holder string, ttl time.Duration) (store.Lease, bool, error) {
	if err := leaseArgs(name, holder, ttl); err != nil {
		return store.Lease{}, false, err
	}
	var (
		cur leaseRecord
		ok  bool
	)
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		now := s.now()
		var live bool
		cur, live = getLease(b, name, now)
		if live && cur.Holder != holder {
			return nil
		}
		ok = true
		if !live {
			token, err := nextFence(tx.Bucket(bucketFences), name)
			if err != nil {
				return err
			}
			cur = leaseRecord{Holder: holder, Token: token, Since: now}
		}
		cur.ExpiresAt = now.Add(ttl)
		return putLease(b, name, cur)
	})
	if err != nil {
		return store.Lease{}, false, fmt.Errorf("store/bolt: acquire lease %s: %w", name, err)
	}
	return store.Lease{Name: name, Holder: cur.Holder, Token: cur.Token, Since: cur.Since}, ok, nil
}

// nextFence returns the next fencing token of name and records it.
func nextFence(b *bbolt.Bucket, name string) (int64, error) {
	var last int64
	if v := b.Get([]byte(name)); len(v) == 8 {
		last = int64(binary.BigEndian.Uint64(v))
	}
	next := last + 1
	return next, b.Put([]byte(name), binary.BigEndian.AppendUint64(nil, uint64(next)))
}

// RenewLease implements store.Leases.
func (s *Store) RenewLease(ctx context.Context, l store.Lease, ttl time.Duration) (bool, error) {
	if err := leaseArgs(l.Name, l.Holder, ttl); err != nil {
		return false, err
	}
	var ok bool
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		now := s.now()
		cur, live := getLease(b, l.Name, now)
		if ok = live && cur.Holder == l.Holder && cur.Token == l.Token; !ok {
			return nil
		}
		cur.ExpiresAt = now.Add(ttl)
		return putLease(b, l.Name, cur)
	})
	if err != nil {
		return false, fmt.Errorf("store/bolt: renew lease %s: %w", l.Name, err)
	}
	return ok, nil
}

// ReleaseHeld implements store.Leases.
func (s *Store) ReleaseHeld(ctx context.Context, l store.Lease) error {
	if err := record.Name("lease name", l.Name); err != nil {
		return err
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		if cur, live := getLease(b, l.Name, s.now()); !live || cur.Holder != l.Holder || cur.Token != l.Token {
			return store.ErrNotHolder
		}
		return b.Delete([]byte(l.Name))
	})
	if err != nil {
		return fmt.Errorf("store/bolt: release lease %s: %w", l.Name, err)
	}
	return nil
}

// ReleaseLease implements store.Leases.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := record.Name("lease name", name); err != nil {
		return err
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		if cur, live := getLease(b, name, s.now()); !live || cur.Holder != holder {
			return store.ErrNotHolder
		}
		return b.Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("store/bolt: release lease %s: %w", name, err)
	}
	return nil
}

// LeaseHolder implements store.Leases.
func (s *Store) LeaseHolder(ctx context.Context, name string) (string, error) {
	var holder string
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		cur, live := getLease(tx.Bucket(bucketLeases), name, s.now())
		if !live {
			return store.ErrNotFound
		}
		holder = cur.Holder
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("store/bolt: lease holder %s: %w", name, err)
	}
	return holder, nil
}

// Heartbeat implements store.Leases.
func (s *Store) Heartbeat(ctx context.Context, member string, ttl time.Duration) error {
	if err := record.Name("member", member); err != nil {
		return err
	}
	if err := record.TTL(ttl); err != nil {
		return err
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		return putLease(tx.Bucket(bucketMembers), member, leaseRecord{ExpiresAt: s.now().Add(ttl)})
	})
	if err != nil {
		return fmt.Errorf("store/bolt: heartbeat %s: %w", member, err)
	}
	return nil
}

// Leave implements store.Leases.
func (s *Store) Leave(ctx context.Context, member string) error {
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketMembers).Delete([]byte(member))
	})
	if err != nil {
		return fmt.Errorf("store/bolt: leave %s: %w", member, err)
	}
	return nil
}

// Members implements store.Leases.
func (s *Store) Members(ctx context.Context) ([]string, error) {
	var members []string
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		members = nil
		now := s.now()
		return tx.Bucket(bucketMembers).ForEach(func(k, v []byte) error {
			if !leaseExpired(v, now) {
				members = append(members, string(k))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: members: %w", err)
	}
	slices.Sort(members) // bbolt iterates in key order already; keep the contract explicit
	return members, nil
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

// getLease returns the lease under name and whether it is live at now.
func getLease(b *bbolt.Bucket, name string, now time.Time) (leaseRecord, bool) {
	v := b.Get([]byte(name))
	if v == nil {
		return leaseRecord{}, false
	}
	var r leaseRecord
	if json.Unmarshal(v, &r) != nil {
		return leaseRecord{}, false
	}
	return r, now.Before(r.ExpiresAt)
}

func putLease(b *bbolt.Bucket, name string, r leaseRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return b.Put([]byte(name), v)
}

// leaseExpired treats a malformed record as expired, so the sweep removes it.
func leaseExpired(v []byte, now time.Time) bool {
	var r leaseRecord
	if json.Unmarshal(v, &r) != nil {
		return true
	}
	return !now.Before(r.ExpiresAt)
}

// PinSetting implements store.Leases. Settings live in the meta bucket
// under a "setting:" prefix.
func (s *Store) PinSetting(ctx context.Context, name, value string) (string, error) {
	if err := record.Name("setting name", name); err != nil {
		return "", err
	}
	key := []byte("setting:" + name)
	stored := value
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if v := b.Get(key); v != nil {
			stored = string(v)
			return nil
		}
		return b.Put(key, []byte(value))
	})
	if err != nil {
		return "", fmt.Errorf("store/bolt: setting %s: %w", name, err)
	}
	return stored, nil
}
