// Package store provides the relay's persistent state: the subscription
// registry, catch-up cursors, idempotency keys for message sends, and the
// leases and membership heartbeats replicas use to share work.
//
// The [Store] interface has two implementations with identical behaviour,
// checked by one contract suite (package storetest):
//
//   - store/bolt: a local bbolt file under the data directory, for a single
//     replica (the default);
//   - store/redisstore: Redis, shared by every replica (required to run more
//     than one).
//
// # How it works
//
// Subscriptions are keyed by their id, a stable hash of the pubsub_token
// computed by the caller. The token and the contact's source_id are
// credentials: they are stored (the relay needs them to subscribe), but a
// [Subscription] logs with both redacted and no error carries them.
//
// A [Cursor] records, per subscription and conversation display_id, how far
// catch-up has seen: the last message id, the last conversation status and its
// raw updated_at. Cursors only move forward (see [Cursor.Advance]); the merge is
// atomic in every backend, so concurrent writers (a live event and a catch-up
// pass) cannot move a cursor back. Deleting a subscription deletes its cursors,
// and a cursor can only be written for a registered subscription.
//
// Idempotency keys make message sends safe to retry:
//
//	state, resp, err := s.ReserveIdempotency(ctx, key, time.Minute)
//	switch state {
//	case store.IdempotencyReserved:   // call upstream once, then
//		// CompleteIdempotency(ctx, key, response, 0) on success,
//		// ReleaseIdempotency(ctx, key) on failure so a retry can proceed.
//	case store.IdempotencyInProgress: // another request is sending: 409
//	case store.IdempotencyCompleted:  // replay resp
//	}
//
// Leases give one holder a named resource (a bucket of tokens) until the lease
// expires or is released; the holder renews by acquiring again. Heartbeat and
// Members keep the set of live replicas. Expiry everywhere is lazy on read (and
// swept periodically by the bbolt backend; Redis expires keys itself).
package store
