// Package webhook delivers the relay's events to HTTP endpoints: signed
// (Standard Webhooks, optionally Chatwoot's scheme too), retried, in order
// per conversation, and durable through JetStream.
//
// How it works:
//
//	JetStream stream (<prefix>.>)
//	  │  one durable pull consumer per endpoint ("relay-webhook-<id>"),
//	  │  FilterSubjects = the endpoint's patterns, starting when the
//	  │  endpoint was created, explicit acks, MaxAckPending bounds the
//	  │  events an endpoint holds (Concurrency×LaneDepth + Batch),
//	  │  pinned priority group: one replica delivers an endpoint at a time
//	  │  (pull requests renewed within PinnedTTL keep the pin)
//	  v
//	runner.fetch (never waits for a delivery) ── barrier: after taking
//	  │     the pin, new events are parked until this runner holds every
//	  │     unacknowledged event (the previous holder's come back as
//	  │     redeliveries, in any order), then queued in stream order
//	  v
//	queues: one FIFO per conversation (account + conversation, or
//	  │     account + contact when unknown), conversations in turn
//	  v
//	Concurrency workers ── head of the next conversation: breaker.wait →
//	  │     rate limit → signed POST (Timeout) → 2xx: Ack │ 410: endpoint
//	  │     disabled, event left unacknowledged │ else the conversation
//	  │     leaves its turn for Schedule[n] ± jitter (at least Retry-After)
//	  │     and its head is retried │ after the last attempt: dead letter
//	  │     on <prefix>.relay.webhook.dead.<id>, Ack
//	  └── keepAlive: InProgress for every held event (queued, waiting,
//	      parked), so JetStream redelivers nothing this runner holds; a
//	      runner whose pin went to another replica restarts, releasing
//	      its events
//
// A conversation waiting for a retry holds no worker: the others go on.
// Retries are scheduled by the runner, not by JetStream's BackOff: a
// redelivery would overtake the later events of the same conversation.
// If the process dies, every unacknowledged event is redelivered after
// AckWait to the replica holding the pin, not necessarily in stream order;
// its barrier parks them with the newer events and delivers them all in
// stream order; the retry schedule starts again.
// Delivery is at least once: a receiver deduplicates on webhook-id.
//
// Request: POST, body = the event exactly as published on NATS, the
// routing headers (Chatwoot-*, Relay-*) as HTTP headers, webhook-id = the
// event's Nats-Msg-Id (its dedup key, stable across retries and
// replays), webhook-timestamp, webhook-signature = "v1,<base64 HMAC-SHA256
// of id.timestamp.body>" per secret (two during a rotation).
//
// Safety: every dial checks the resolved address (Options.Addresses):
// link-local (169.254.0.0/16, fe80::/10), AWS's service network
// (fd00:ec2::/64, metadata at ::254), Alibaba Cloud's metadata address,
// 0.0.0.0/8, IPv6 forms embedding an IPv4 address (NAT64, 6to4,
// IPv4-compatible), unspecified and multicast addresses are always refused;
// loopback and private ranges unless allowed. No proxy, no redirects,
// answers read up to 64 KiB and discarded; https unless the endpoint
// allows http. Secrets print as REDACTED; errors never carry the URL.
package webhook
