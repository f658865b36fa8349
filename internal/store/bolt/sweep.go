package bolt

import (
	"context"
	"time"

	"go.etcd.io/bbolt"
)

func (s *Store) startSweep(every time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopSweep = cancel
	if every < 0 {
		close(s.sweepDone)
		return
	}
	go s.sweepLoop(ctx, every)
}

func (s *Store) sweepLoop(ctx context.Context, every time.Duration) {
	defer close(s.sweepDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.Sweep(ctx); err != nil {
				s.log.Warn("store sweep failed", "err", err)
			} else if n > 0 {
				s.log.Debug("store sweep", "deleted", n)
			}
		}
	}
}

// Sweep deletes every expired idempotency key, lease and heartbeat now and
// returns how many it deleted. Open runs it periodically.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	now := s.now()
	deleted := 0
	err := s.update(ctx, func(tx *bbolt.Tx) error {
		for _, b := range []struct {
			name    []byte
			expired func(v []byte, now time.Time) bool
		}{
			{bucketIdempotency, idempotencyExpired},
			{bucketLeases, leaseExpired},
			{bucketMembers, leaseExpired},
		} {
			n, err := sweepBucket(tx.Bucket(b.name), now, b.expired)
			if err != nil {
				return err
			}
			deleted += n
		}
		return nil
	})
	return deleted, err
}

func sweepBucket(b *bbolt.Bucket, now time.Time, expired func([]byte, time.Time) bool) (int, error) {
	var dead [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if expired(v, now) {
			dead = append(dead, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(dead), nil
}
