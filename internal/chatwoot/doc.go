// Package chatwoot provides a typed client for Chatwoot's public client API
// (/public/api/v1), the HTTP side of an API-channel inbox that a program uses
// to act as a customer: contacts, conversations and messages.
//
// # How it works
//
// Every request, typed or raw (Client.Do), goes through one pipeline:
//
//	shared rate.Limiter wait -> per-attempt timeout -> HTTP -> classify --+
//	        ^                                                            |
//	        +---------- backoff with jitter, only when safe -------------+
//
// The steps in detail:
//
//   - Rate: one *rate.Limiter is shared by every client of a process (the
//     relay's proxy and catch-up), sized under Chatwoot's per-IP budget of
//     3,000 requests per minute (Rack::Attack "req/ip").
//   - Retries: a 429 is retried for any method (Rack::Attack rejects before the
//     controller runs, so nothing was executed); a dial failure is retried for
//     any method (nothing was sent); GET and HEAD are also retried on other
//     connection errors and on 502/503/504. A POST or PATCH is never retried
//     after a timeout or a 5xx: it may have been executed. Timeouts are not
//     retried for any method; each attempt already had the full timeout.
//   - Errors: every failure is an *APIError whose Kind maps to a sentinel
//     (ErrNotFound, ErrInvalid, ErrRateLimited, ErrUpstream, ErrUnreachable,
//     ErrTimeout, ...), so errors.Is works. Error texts name the route template
//     ("GET /inboxes/{inbox}/contacts/{source_id}"), never the path itself:
//     inbox identifiers and source_ids are bearer secrets.
//   - Requests only ever go to the scheme and host of Options.BaseURL;
//     redirects elsewhere are refused.
//
// Message.Raw and Conversation.Raw keep the exact bytes Chatwoot returned for
// each object so that catch-up can republish them without re-encoding.
//
// Metrics are registered on the prometheus.Registerer passed in, all with the
// prefix relay_chatwoot_ and fixed label values (route templates, method,
// status class, error kind).
package chatwoot
