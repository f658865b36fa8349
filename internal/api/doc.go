// Package api provides the relay's HTTP API: subscription management
// (/v1/subscriptions), Chatwoot's public client API proxied path for path
// (/public/api/v1/...), health (/healthz, /readyz), metrics and its own
// OpenAPI document (/openapi.json).
//
// # How it works
//
// Every request goes through one pipeline:
//
//	check path -> route -> bearer token + scope -> handler -> Error (one status mapping)
//	    |                                              |
//	    400 on dot segments,                     limit body, decode + validate,
//	    encoded slashes, ...                     one call (registry or Chatwoot), write
//
// The path check runs before routing so that a proxied path can never be
// read differently by the relay and by Chatwoot.
//
// Tokens carry scopes: admin for /v1, proxy for /public/api/v1, the latter
// optionally restricted to inbox identifiers (then only
// /public/api/v1/inboxes/<one of them>[/...] is served, so the relay never
// computes an identifier_hash for another inbox). A missing or unknown token
// is 401, a token without the route's scope or inbox 403. Plain APITokens
// have every scope. Without any token, only local requests are served:
// from a loopback address, to a loopback Host (no DNS rebinding), without
// forwarding headers (no reverse proxy in front) and not from another
// site's web page (Origin, Sec-Fetch-Site). Health, readiness, metrics and
// the OpenAPI document are always open. Errors the relay answers itself are
// {"error":{"code":"...","message":"..."}}; messages never hold tokens,
// source_ids or inbox identifiers.
//
// # The proxy
//
// /public/api/v1/<path> is sent to Chatwoot's /public/api/v1/<path> through
// chatwoot.Client.Do (shared rate limiter, timeouts, retries only when safe,
// requests only to the configured Chatwoot). The query is forwarded except the
// relay's own parameters (subscribe, wait), and so are the body and the
// Content-Type, Accept and conditional headers; Chatwoot's status, body and
// content type come back unchanged. An unreachable Chatwoot is 502, a timeout
// 504. On top of the plain proxy:
//
//   - contact create and show: the pubsub_token Chatwoot returns is
//     registered (Registry.Register, origin "proxy") unless ?subscribe=false;
//     the subscription id is returned in Relay-Subscription. A registration
//     failure never loses Chatwoot's answer: it is reported in
//     Relay-Subscription-Error, and Chatwoot is never called twice;
//   - contact create, show and update: identifier_hash is filled in when the
//     request has an identifier but no hash and the relay holds the inbox's
//     hmac_token (JSON and form bodies, and the query of a show);
//   - message create: echo_id is filled in when absent and returned in
//     Relay-Echo-Id; Idempotency-Key makes a retry replay the first answer;
//     ?wait=echo holds the answer until the message's message.created echo
//     arrives on the cable (the event stream feeds the EchoTracker).
//
// Message create with an Idempotency-Key:
//
//	reserve(hash(path, key)) --completed--> replay (Idempotent-Replay: true)
//	    | reserved            --in progress--> 409 conflict
//	    v
//	POST to Chatwoot --4xx, connection refused--> release: a retry sends again
//	    | 2xx, 5xx, timeout, broken connection
//	    v
//	complete: this answer is replayed for 24 h
//
// A timed-out or 5xx send may have created the message, so it is stored like
// a success: a key never causes a second post. The client decides what to do
// with an unknown outcome (its echo_id is in Relay-Echo-Id and in the stored
// answer).
//
// Metrics are registered on the Registerer passed in, prefix relay_api_, with
// fixed label values (route templates, methods, status classes, outcomes).
package api
