package bolt

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/internal/record"
)

// Idempotency record states (first byte of the value).
const (
	idemPending = 'p'
	idemDone    = 'd'
	idemHeader  = 1 + 8
)

// ReserveIdempotency implements store.Idempotency.
func (s *Store) ReserveIdempotency(ctx context.Context, key string, ttl time.Duration) (store.IdempotencyState, []byte, error) {
	ttl, err := idemArgs(key, ttl)
	if err != nil {
		return 0, nil, err
	}
	var state store.IdempotencyState
	var resp []byte
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketIdempotency)
		now := s.now()
		if v := b.Get([]byte(key)); v != nil && !idempotencyExpired(v, now) {
			state, resp = decodeIdempotency(v)
			return nil
		}
		state, resp = store.IdempotencyReserved, nil
		return b.Put([]byte(key), encodeIdempotency(idemPending, now.Add(ttl), nil))
	})
	if err != nil {
		return 0, nil, fmt.Errorf("store/bolt: reserve idempotency key: %w", err)
	}
	return state, resp, nil
}

// CompleteIdempotency implements store.Idempotency.
func (s *Store) CompleteIdempotency(ctx context.Context, key string, response []byte, ttl time.Duration) error {
	ttl, err := idemArgs(key, ttl)
	if err != nil {
		return err
	}
	err = s.update(ctx, func(tx *bbolt.Tx) error {
		v := encodeIdempotency(idemDone, s.now().Add(ttl), response)
		return tx.Bucket(bucketIdempotency).Put([]byte(key), v)
	})
	if err != nil {
		return fmt.Errorf("store/bolt: complete idempotency key: %w", err)
	}
	return nil
}

// ReleaseIdempotency implements store.Idempotency.
func (s *Store) ReleaseIdempotency(ctx context.Context, key string) error {
	if err := record.Name("idempotency key", key); err != nil {
		return err
	}
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketIdempotency)
		if v := b.Get([]byte(key)); v != nil && v[0] == idemPending {
			return b.Delete([]byte(key))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store/bolt: release idempotency key: %w", err)
	}
	return nil
}

func idemArgs(key string, ttl time.Duration) (time.Duration, error) {
	if err := record.Name("idempotency key", key); err != nil {
		return 0, err
	}
	return record.IdempotencyTTL(ttl)
}

func encodeIdempotency(state byte, expires time.Time, response []byte) []byte {
	v := make([]byte, idemHeader, idemHeader+len(response))
	v[0] = state
	binary.BigEndian.PutUint64(v[1:], uint64(expires.UnixNano()))
	return append(v, response...)
}

func decodeIdempotency(v []byte) (store.IdempotencyState, []byte) {
	if v[0] == idemPending {
		return store.IdempotencyInProgress, nil
	}
	return store.IdempotencyCompleted, append([]byte{}, v[idemHeader:]...)
}

// idempotencyExpired treats a malformed record as expired, so it is replaced.
func idempotencyExpired(v []byte, now time.Time) bool {
	if len(v) < idemHeader || (v[0] != idemPending && v[0] != idemDone) {
		return true
	}
	expires := time.Unix(0, int64(binary.BigEndian.Uint64(v[1:])))
	return !now.Before(expires)
}
