// Package fanout publishes every decoded Chatwoot event onto its NATS
// subject, in order per subscription, at least once into JetStream and
// once per dedup key.
//
// How it works:
//
//	cable reader (Deliver, with the subscription's *Sub record)
//	  Handle(Event) ── fields: the routing, filter and dedup values of the
//	      │            message, captured by the cable reader while it
//	      │            decoded the frame (cable.Config.Fields = Fields); a
//	      │            message without them (a replay) is scanned once by
//	      │            the same scanner (jsonscan; no allocation)
//	      │          ── route: payload ids first, then the record's Hints,
//	      │             then its Owner's RouteFinder (account feeds), else
//	      │             "_"; every token checked against [A-Za-z0-9_-]
//	      │          ── the record learns ids and activity (Sub.Observe);
//	      │             the observers (AddObserver: feed routes, send
//	      │             echoes) see the Route
//	      │          ── filter: private-note typing is dropped, except
//	      │             from an account feed (Event.Feed)
//	      │          ── dedup: bounded in-process window (count + age)
//	      │          ── redact: "pubsub_token" and contact_inbox "source_id"
//	      │             values blanked in place
//	      │          ── core NATS with nothing buffered or in flight: the
//	      │             caller publishes it itself (no hand-off); else
//	      v
//	  bounded buffer (bytes + events; a live event that finds it full waits
//	      │           up to HoldBack once per overflow, then overflow is
//	      │           dropped, counted, reported Lost, not ready)
//	      │
//	  sender goroutine ── Publisher (core NATS or async JetStream) with at
//	                      most InFlight unacknowledged; failures go back to
//	                      the head of the buffer in order and are retried;
//	                      once NATS holds an event, the record's
//	                      Owner.Published hears of it
//
// Subject: <prefix>.<account>.<inbox>.<contact>.<conversation>.<event>,
// conversation = display_id, event = Chatwoot's name (two tokens, e.g.
// message.created). The body is the message object byte for byte, except
// that the contact's credentials are blanked: pubsub_token values unless
// Options.ForwardTokens, contact_inbox.source_id values unless
// Options.ForwardSourceIDs (a message's own source_id is kept). Routing
// reads the body before it is redacted, so nothing it needs is lost.
//
// Headers: Nats-Msg-Id (dedup key), Chatwoot-Event, Chatwoot-Account-Id,
// Chatwoot-Inbox-Id, Chatwoot-Contact-Id, Chatwoot-Conversation-Id,
// Relay-Subscription, Relay-Received-At (RFC 3339, nanoseconds, UTC),
// Relay-Replayed: true on catch-up events, and Chatwoot-Visibility on what a
// contact would not see: "private" (a private note, or an agent typing
// one), "activity" (message_type 2) or "agent" (events Chatwoot sends to
// agents only: conversation.read, assignee.changed, contact.*, ...). It
// depends on the event alone, so the copy a contact token and an account
// feed both receive is published once with the same headers.
//
// Dedup keys (identical for a live event and its replay):
//
//	message.created       m:<account>:<message id>:created
//	message.updated       m:<account>:<message id>:<updated_at>
//	message.<other>       m:<account>:<message id>:<other>:<updated_at>
//	conversation.created  c:<account>:<display_id>:conversation.created
//	conversation.<other>  c:<account>:<display_id>:<event>:<updated_at|timestamp>
//	typing, presence,     i:<account>:<inbox>:<contact>:<conversation>:<event>:<crc64 of body>
//	other events          (+ :<subscription id> when the contact is unknown)
//
// Timestamps are the raw JSON text, so keys are stable. The "instant" keys
// of typing/presence events are kept in the in-process window only for
// Options.InstantWindow (default 1 s): copies of one broadcast that reach
// the relay through several tokens of one hmac-verified contact collapse
// into one, while the same payload a few seconds later is a new event. Their
// Nats-Msg-Id adds the time bucket (:<ReceivedAt / InstantWindow>) so
// JetStream's longer duplicate window does not swallow later repeats.
//
// Delivery: JetStream mode stores each event and checks its ack; core mode
// is at-most-once to the subscribers connected at that moment. While NATS
// is down Handle keeps buffering up to Options.BufferBytes and Ready()
// reports false; the buffer drains in order on reconnect. nats.go's own
// reconnect buffer is disabled so no event is lost without being counted.
//
// Restart: in JetStream mode Open first loads the window from the ids the
// stream stored within DedupTTL (newest first, at most DedupSize, bounded
// by Config.RestoreTimeout), so catch-up replays of what a killed process
// had published reach core subscribers once too (restore.go says why).
//
// Lifecycle events (<prefix>.relay.subscription.<state>,
// <prefix>.relay.catchup.done) go through the same buffer, in order with
// the events handled before them.
package fanout
