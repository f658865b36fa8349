// Package bolt provides the local-file store.Store backend: one bbolt file,
// for a relay running as a single replica.
//
// # How it works
//
// Every operation is one bbolt transaction, so each is atomic, including the
// advance-only cursor merge and the idempotency and lease checks. Writes are
// fsynced before they return. The file is locked by the process that opens
// it; a second relay on the same data directory fails to open it after
// Options.LockTimeout.
//
// Expiring records (idempotency keys, leases, membership heartbeats) store
// their expiry time from Options.Now; reads treat an expired record as absent
// and a background sweep (Options.SweepInterval) deletes them.
//
// # File layout
//
//	meta           "version" -> "1"
//	subscriptions  <id> -> JSON subscription record (holds the token: the file is 0600)
//	cursors        <subscription id>/ (nested bucket) <display_id> -> JSON {last_message_id, status, updated_at}
//	idempotency    <key> -> 1 byte state ('p' in progress, 'd' done) | 8 bytes expiry (unix ns, big endian) | response
//	leases         <name> -> JSON {holder, expires_at}
//	members        <member> -> JSON {expires_at}
package bolt
