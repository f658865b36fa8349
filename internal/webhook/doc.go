// Package webhook delivers the relay's events to HTTP endpoints: signed
// (Standard Webhooks, optionally Chatwoot's scheme too), retried, in order
// per conversation, and durable through JetStream.
//
// How it works:
//
//	JetStream stream (<prefix>.>)
//	  │  one durable pull consumer per endpoint ("relay-webhook-<id>"),
//	  │  FilterSubjects = the endpoint's patterns, starting when the
//	  │  endpoint was created, explicit acks,
//	  │  pinned priority group: one replica delivers an endpoint at a time,
//	  │  another takes over after PinnedTTL without pulls
//	  v
//	runner.fetch ── lane = hash(account, conversation) % Concurrency
//	  │               (conversation unknown: account + contact)
//	  v
//	lane (bounded, in stream order) ── head: breaker.wait → rate limit →
//	  │     signed POST (Timeout) → 2xx: Ack │ 410: endpoint disabled,
//	  │     event left unacknowledged │ else wait Schedule[n] ± jitter
//	  │     (at least Retry-After) and retry the head │ after the last
//	  │     attempt: dead letter on <prefix>.relay.webhook.dead.<id>, Ack
//	  └── keepAlive: InProgress for every queued event, so JetStream
//	      redelivers nothing a lane still holds
//
// Retries are scheduled by the lane, not by JetStream's BackOff: a
// redelivery would overtake the later events of the same conversation.
// If the process dies, every unacknowledged event is redelivered after
// AckWait, in stream order, and its retry schedule starts again.
// Delivery is at least once: a receiver deduplicates on webhook-id.
//
// Request: POST, body = the event exactly as published on NATS, the
// routing headers (Chatwoot-*, Relay-*) as HTTP headers, webhook-id = the
// event's Nats-Msg-Id (its dedup key, stable across retries and
// replays), webhook-timestamp, webhook-signature = "v1,<base64 HMAC-SHA256
// of id.timestamp.body>" per secret (two during a rotation).
//
// Safety: every dial checks the resolved address (Options.Addresses):
// link-local (169.254.0.0/16, fe80::/10, the fd00:ec2::254 metadata
// address), unspecified and multicast addresses are always refused;
// loopback and private ranges unless allowed. No proxy, no redirects,
// answers read up to 64 KiB and discarded; https unless the endpoint
// allows http. Secrets print as REDACTED; errors never carry the URL.
package webhook
