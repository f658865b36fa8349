// Package api provides the relay's HTTP API: subscription management
// (/v1/subscriptions), account feeds (/v1/feeds: a Chatwoot user's access
// token in, the feed out, never the token), Chatwoot's public client API
// proxied path for path
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
// {"error":{"code":"...","message":"..."}} on its own routes and have
// Chatwoot's shape on proxied routes ({"status":502,"error":"Bad Gateway"};
// a 422 is {"message":"...","attributes":[]}), with the relay's code and
// message in the Relay-Error and Relay-Error-Message headers. Messages
// never hold tokens, source_ids or inbox identifiers.
//
// # The proxy
//
// /public/api/v1/<path> is sent to Chatwoot's /public/api/v1/<path> through
// chatwoot.Client.Do (shared rate limiter, timeouts, retries only when safe,
// requests only to the configured Chatwoot). Like Rails, the relay ignores
// a trailing slash and takes a ".json" suffix as the same route (the suffix
// is forwarded as sent). The query is forwarded except the relay's own
// parameters (subscribe, wait), and so are the body and the Content-Type,
// Accept and conditional headers; Chatwoot's status, body and content type
// come back unchanged. An unreachable Chatwoot is 502, a timeout 504. On top
// of the plain proxy:
//
//   - contact create and show: the pubsub_token Chatwoot returns is
//     registered (Registry.Register, origin "proxy") unless ?subscribe=false;
//     the subscription id is returned in Relay-Subscription. A registration
//     failure never loses Chatwoot's answer: it is reported in
//     Relay-Subscription-Error, and Chatwoot is never called twice;
//   - contact create, show and update: identifier_hash is filled in when the
//     request has an identifier but no hash and the relay holds the inbox's
//     hmac_token (JSON, form and multipart bodies, and the query of a show);
//   - message create: echo_id is filled in when absent and returned in
//     Relay-Echo-Id; Idempotency-Key sends a message at most once per key;
//     ?wait=echo holds the answer until the message's message.created echo
//     arrives on the cable (the event stream feeds the EchoTracker).
//
// Message create with an Idempotency-Key (scoped to the API token; the
// request is fingerprinted by method, unescaped route, query and body;
// content and echo_id are refused in its query, echo_id in the query of any
// message create, since Rails takes them over the body's):
//
//	reserve lock --final answer stored--> same fingerprint: replay (Idempotent-Replay: true)
//	    |                                 other: 422
//	    | in progress --> 409
//	    v
//	earlier attempt of unknown outcome? --> lookup (resolve.go):
//	    |                                     found: answer it, store it
//	    |                                     cannot tell: 503 + Retry-After
//	    v                                     absent: post again, same echo_id
//	store the attempt (fingerprint, echo_id, start, content digest) -> POST
//	    | 2xx: store, replayed for IdempotencyTTL
//	    | 4xx, refused, body cut off: nothing created, a retry posts again
//	    | 5xx, timeout, lost connection: answered as is; the retry resolves it
//	    v
//	release lock
//
// Registrations share the store's writes: POST /v1/subscriptions/batch
// registers up to MaxBatchRegistrations tokens in one Registry.RegisterBatch
// call (one result per item: a bad item fails alone), and concurrent POST
// /v1/subscriptions are grouped the same way (regroup.go): one that finds no
// registration under way runs at once, those arriving meanwhile go together
// in the next batch.
//
// Metrics are registered on the Registerer passed in, prefix relay_api_, with
// fixed label values (route templates, methods, status classes, outcomes).
package api
