// Package cable provides the ActionCable client side of the relay: a Pool
// of Chatwoot RoomChannel subscriptions, one per contact pubsub_token,
// multiplexed over a few websocket connections and kept confirmed through
// deploys, network failures, stalls and dead tokens.
//
// # Protocol flow
//
// ActionCable speaks JSON text frames (subprotocol actioncable-v1-json):
//
//	client                                   server (Chatwoot /cable)
//	  ── websocket upgrade ───────────────────▶
//	  ◀──────────────────── {"type":"welcome"}
//	  ── {"command":"subscribe","identifier":"{\"channel\":\"RoomChannel\",\"pubsub_token\":\"…\"}"} ▶
//	  ◀── {"identifier":"…","type":"confirm_subscription"}   (never, for an unknown token)
//	  ◀── {"type":"ping","message":1795248781}               (every 3 s)
//	  ◀── {"identifier":"…","message":{"event":"message.created","data":{…}}}
//	  ◀── {"type":"disconnect","reason":"server_restart","reconnect":true}   (rare)
//
// The identifier is a JSON string holding a JSON object, matched by the
// server as an exact string; Identifier builds it, byte for byte the same
// for every command of a token. The pool keeps only a contact's escaped
// token (the token itself, for most) and builds the identifier when it
// writes a command; frames are routed by the token part of the identifier
// they echo, without allocating. Decode parses server frames without
// allocating and without trusting them: malformed and unknown frames are
// errors the caller counts. In the same pass it captures the values of a
// broadcast's message that Config.Fields names (the fan-out's routing
// fields), handed to Handler in Delivery.Fields: a frame is read once.
//
// # How the pool works
//
// The Pool owns the desired set of subscriptions (Add, Remove; idempotent
// per token) and places them on connections of up to PerConn each, opening
// connections as needed and draining the least loaded one when the rest
// can carry its subscriptions. Each connection runs
//
//	dial → await welcome → resubscribe (paced) → serve → back off → dial …
//
// with one reader and one writer goroutine per socket, and its own
// delivery goroutine that calls Handler in frame order (or, with Direct,
// the reader calls it), so per-subscription order is kept. The pool is
// generic over the record it carries for each subscription (Pool[M]): the
// relay's is *fanout.Sub, handed back with every Delivery and StateChange. Every welcome queues a subscribe for everything the
// connection carries; one process-wide token bucket (SubscribeRate,
// SubscribeBurst) admits every subscribe the process sends, in FIFO order,
// and a second bucket at the same rate paces them again at the socket, so
// a late writer cannot bunch them. Both run 1 % below SubscribeRate to
// absorb the network's jitter: a reconnect of 100,000 subscriptions never
// exceeds the rate as Chatwoot observes it.
//
// Resilience:
//   - stale: no frame for StaleAfter (Chatwoot pings every 3 s) → reconnect;
//   - reconnect with exponential backoff and full jitter from BackoffMin to
//     BackoffMax, reset by a welcome; never gives up; a disconnect frame
//     with reconnect:false waits BackoffMax; one connection's failure does
//     not touch the others;
//   - a subscribe unconfirmed after ConfirmTimeout is unsubscribed (Chatwoot
//     keeps the half-made subscription until then) and retried with backoff;
//     after VerifyAfter misses in a row the Verifier is asked, and
//     VerdictInvalid makes the subscription invalid;
//   - after ParkAfter misses in a row, once Chatwoot confirmed anything at
//     all, the subscription is parked (StateParked): tried again every
//     ParkInterval only. Retries wait in their own queue, served only when
//     no fresh subscribe (new, or confirmed before a reconnect) waits, so
//     thousands of tokens Chatwoot never confirms do not delay a new
//     registration. The first miss of a subscription is logged, later ones
//     at debug level, and the parked ones are counted in one line every
//     5 minutes;
//   - reject_subscription → invalid;
//   - a subscribe never follows an unsubscribe of the same identifier on one
//     socket within 500 ms: Rails runs a socket's commands on a worker pool,
//     so back-to-back commands may run out of order; likewise a subscription
//     moved off a drained connection is subscribed on its new socket only
//     500 ms after the old one closed, so no token is held by two sockets;
//   - a frame above ReadLimit is read to its end and dropped (counted, and
//     reported as a gap of its subscription); the connection lives on;
//   - the backoff resets only after a session that confirmed something or
//     lasted StaleAfter, so a server that welcomes and drops at once does not
//     get a reconnect loop;
//   - optional update_presence heartbeat per confirmed subscription.
//
// # Delivery policy
//
// By default the reader never waits for Handler: broadcasts go through a
// bounded queue per connection (DeliveryQueue). When it is full the
// broadcast is dropped, counted as
// relay_cable_dropped_total{reason="queue_full"}, and reported as ChangeGap
// (at most once a second per subscription) so the relay can catch the
// subscription up through the REST API.
//
// With Direct the reader calls Handler itself: no hand-off between
// goroutines per broadcast. The Handler must return within a bounded
// moment well below StaleAfter (the read deadline is set before each read,
// so time spent in Handler does not count; frames wait in the socket).
// The relay uses it: the fan-out's Deliver waits at most HoldBack for
// buffer room, so a burst holds the socket back instead of being dropped.
//
// State changes (confirmed, lost, invalid, removed, gap) go to OnState; a
// confirm after a loss is where catch-up starts.
//
// A subscription is named by SubscriptionID (a hash of its token) in logs
// and callbacks; the token is only ever written to the socket.
package cable
