// Package feeds provides account feeds: a Chatwoot user's access token
// turned into one RoomChannel subscription per account of the user, whose
// events (every conversation of the user's inboxes, private notes, activity
// messages, assignments, conversation.read, contact.*) go to the fan-out
// like contact events, and a catch-up through the Application API after
// every (re)confirm.
//
// # How it works
//
//	POST /v1/feeds {access_token} ─▶ Manager.Add ── GET /api/v1/profile ──▶ store.PutFeed
//	                                      │
//	                                      └─ per account: cable.Pool.AddUser(pubsub_token, account_id, user_id, *Sub)
//	confirm ─▶ Confirmed ─▶ catch-up walk: conversations by last activity, messages after the
//	                        account's cursor, replayed as message.created (Relay-Replayed),
//	                        in bounded runs until the walk ended; then the cursor moves
//	no confirms ─▶ Verify (pool's verifier) ─▶ profile read again: a rotated pubsub_token
//	                        replaces the subscriptions; a refused access token stops the feed
//
// Cursors: each (feed, account) keeps a message id such that every message
// up to it is in NATS. Message ids are global and grow, so "messages after
// the cursor" of every conversation active since is exactly what was
// missed. A catch-up is a walk (see walk.go): down the conversations by
// last activity, then again over those that jumped over it while it went
// down. Runs of a walk are bounded (runPages, runCalls) to spread the load
// on the shared Chatwoot budget; a walk that needs more is split, counted
// (relay_feed_catchup_splits_total) and goes on at once where it stopped.
// The cursor is written only when a walk ended and NATS holds all it
// replayed, and then only up to the newest message listed when it began
// (later ones may sit in conversations it read before they came); and when
// a subscription that was caught up and had no gap loses its connection
// (or the relay stops): then it moves to the newest live message that has
// been in NATS for settleAfter, since Chatwoot may deliver two broadcasts
// out of order. A relay that dies between two writes, or in the middle of
// a walk, walks again from the stored cursor on its next start; the dedup
// keys drop the copies.
//
// A feed's first confirm sets the cursor to the newest message of the
// account without replaying history: a feed starts when it is added.
//
// The access and pubsub tokens never appear in logs, errors, subjects or
// metrics: a feed is named by its id, a hash of the access token.
package feeds
