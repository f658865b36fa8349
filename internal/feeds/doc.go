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
//	confirm ─▶ Confirmed ─▶ catch-up: conversations by last activity, messages after the
//	                        account's cursor, replayed as message.created (Relay-Replayed)
//	no confirms ─▶ Verify (pool's verifier) ─▶ profile read again: a rotated pubsub_token
//	                        replaces the subscriptions; a refused access token stops the feed
//
// Cursors: each (feed, account) keeps the highest message id known to be in
// NATS. Message ids are global and grow, so "messages after the cursor" of
// every conversation active since is exactly what was missed. The cursor
// is written when a catch-up has published everything it read (up to the
// newest message it read), and when a subscription that was caught up and
// had no gap loses its connection (or the relay stops): then it moves to
// the newest live message that has been in NATS for settleAfter, since
// Chatwoot may deliver two broadcasts out of order. A relay that dies
// between two writes replays a little more on its next start; the dedup
// keys drop the copies.
//
// A feed's first confirm sets the cursor to the newest message of the
// account without replaying history: a feed starts when it is added.
//
// The access and pubsub tokens never appear in logs, errors, subjects or
// metrics: a feed is named by its id, a hash of the access token.
package feeds
