// Package redisstore provides the Redis store.Store backend, shared by every
// replica of a scaled-out relay.
//
// # How it works
//
// Every read-modify-write (subscription upsert, cursor advance, idempotency
// reserve/release, lease acquire/release) is one Lua script, so it is atomic
// across replicas without client-side locks or retries. Expiry uses Redis'
// own key TTLs (PX, millisecond precision; shorter TTLs round up to 1 ms).
// Timestamps come from Options.Now on the calling replica.
//
// Standalone Redis (or Sentinel-managed) is supported; Redis Cluster is not:
// a script touches keys that would live in different slots.
//
// # Key layout
//
// All keys start with Options.Prefix (default "relay:"):
//
//	<p>sub:<id>           HASH  d = JSON subscription record (token included; created_at and
//	                            last_activity_at left zero), c = created_at, a = last_activity_at
//	                            (both unix microseconds, "0" for unset)
//	<p>subs               ZSET  every subscription id, score 0: ZRANGE BYLEX pages in id order
//	<p>cur:<id>           HASH  <display_id> = "<last message id>|<status>|<updated_at>"
//	<p>idem:<key>         STRING "p" (in progress) or "d" followed by the stored response; PX ttl
//	<p>lease:<name>       STRING holder; PX ttl
//	<p>member:<member>    STRING "1"; PX ttl (the heartbeat)
//	<p>members            SET   member names; Members drops names whose heartbeat key expired
package redisstore
