package redisstore

import (
	"context"
	"time"

	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/internal/record"
)

// Idempotency values: "p" in progress, "d"+response done.
const (
	idemPending = "p"
	idemDone    = "d"
)

// ReserveIdempotency implements store.Idempotency.
func (s *Store) ReserveIdempotency(ctx context.Context, key string, ttl time.Duration) (store.IdempotencyState, []byte, error) {
	ttl, err := idemArgs(key, ttl)
	if err != nil {
		return 0, nil, err
	}
	v, err := reserveIdempotencyScript.Run(ctx, s.rdb, []string{s.keys.idem(key)}, millis(ttl)).Text()
	if err != nil {
		return 0, nil, wrap("reserve idempotency key", err)
	}
	switch {
	case v == "":
		return store.IdempotencyReserved, nil, nil
	case v == idemPending:
		return store.IdempotencyInProgress, nil, nil
	}
	return store.IdempotencyCompleted, []byte(v[len(idemDone):]), nil
}

// CompleteIdempotency implements store.Idempotency.
func (s *Store) CompleteIdempotency(ctx context.Context, key string, response []byte, ttl time.Duration) error {
	ttl, err := idemArgs(key, ttl)
	if err != nil {
		return err
	}
	v := make([]byte, 0, len(idemDone)+len(response))
	v = append(append(v, idemDone...), response...)
	return wrap("complete idempotency key", s.rdb.Set(ctx, s.keys.idem(key), v, ttl).Err())
}

// ReleaseIdempotency implements store.Idempotency.
func (s *Store) ReleaseIdempotency(ctx context.Context, key string) error {
	if err := record.Name("idempotency key", key); err != nil {
		return err
	}
	return wrap("release idempotency key", releaseIdempotencyScript.Run(ctx, s.rdb, []string{s.keys.idem(key)}).Err())
}

func idemArgs(key string, ttl time.Duration) (time.Duration, error) {
	if err := record.Name("idempotency key", key); err != nil {
		return 0, err
	}
	return record.IdempotencyTTL(ttl)
}
