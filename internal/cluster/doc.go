// Package cluster splits the subscriptions of a deployment between its
// replicas when they share Redis.
//
// Tokens hash into a fixed number of buckets (Bucket). Every replica is a
// member: it renews a heartbeat in the store, reads the live members, and
// computes by rendezvous (highest random weight) hashing which buckets it
// should own. It claims a lease per bucket it should own, with a fencing
// token, and renews what it holds by compare-and-set on that token. Only
// the subscriptions of held buckets are subscribed (Config.OnAcquire and
// OnRelease drive the registry).
//
// # Handover
//
// When the members change, a bucket whose owner changes is handed over:
// the old owner stops its subscriptions (OnRelease returns when they are
// unsubscribed) and then releases the lease; the new owner, which tried
// to claim it every Poll, claims it and subscribes. A member that stops
// (Close) leaves the member set first and then hands every bucket over the
// same way. After a crash the leases expire (TTL) and the new owners claim
// them then.
//
// # Availability over exclusivity
//
// A member that cannot reach the store keeps the buckets it holds (and
// says so: a log line and the relay_cluster_store_unreachable gauge)
// instead of dropping them: a subscription held twice costs duplicate
// frames that the stream's dedup key absorbs, a subscription held by
// nobody costs a gap. When it reaches the store again, a renewal that
// fails because another member claimed the bucket meanwhile stops the
// bucket at once (fenced).
package cluster
