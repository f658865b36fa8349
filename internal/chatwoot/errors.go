package chatwoot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Sentinel errors. Every error a call returns because of Chatwoot or the
// network is an *APIError; errors.Is matches it against the sentinel of its
// Kind.
var (
	// ErrNotFound: 404. The inbox, contact (source_id), conversation or
	// message does not exist or is out of the contact's scope.
	ErrNotFound = errors.New("chatwoot: not found")
	// ErrInvalid: 422 (validation failed; APIError.Message holds Chatwoot's
	// message) or 400.
	ErrInvalid = errors.New("chatwoot: invalid request")
	// ErrRateLimited: 429 from Rack::Attack, after the retries allowed.
	ErrRateLimited = errors.New("chatwoot: rate limited")
	// ErrUpstream: any 5xx. Chatwoot answers a failed HMAC check with 500.
	ErrUpstream = errors.New("chatwoot: upstream error")
	// ErrStatus: any other unexpected, non-2xx status.
	ErrStatus = errors.New("chatwoot: unexpected status")
	// ErrUnreachable: dial or connection failure, no usable response.
	ErrUnreachable = errors.New("chatwoot: unreachable")
	// ErrTimeout: the per-attempt timeout or the caller's deadline expired.
	ErrTimeout = errors.New("chatwoot: timeout")
	// ErrRedirect: Chatwoot redirected to another scheme or host, or
	// redirected too many times.
	ErrRedirect = errors.New("chatwoot: redirect refused")
	// ErrDecode: a success status with a body that is not the expected JSON.
	ErrDecode = errors.New("chatwoot: malformed response")
	// ErrArgument: the call was rejected before sending (empty identifier,
	// path outside the public API, ...). Not an *APIError.
	ErrArgument = errors.New("chatwoot: invalid argument")
	// ErrNotSent wraps a timeout that happened while the request waited for
	// the rate limiter or for a retry: this attempt never left the relay, and
	// an earlier one was only made if Chatwoot refused it unexecuted (429) or
	// it could not connect. Matched together with ErrTimeout.
	ErrNotSent = errors.New("chatwoot: request not sent")
)

// Kind classifies an *APIError. Its values are fixed and used as metric
// label values.
type Kind string

// Error kinds.
const (
	KindNotFound    Kind = "not_found"
	KindInvalid     Kind = "invalid"
	KindRateLimited Kind = "rate_limited"
	KindUpstream    Kind = "upstream"
	KindStatus      Kind = "status"
	KindUnreachable Kind = "unreachable"
	KindTimeout     Kind = "timeout"
	KindCanceled    Kind = "canceled"
	KindRedirect    Kind = "redirect"
	KindDecode      Kind = "decode"
)

var allKinds = []Kind{
	KindNotFound, KindInvalid, KindRateLimited, KindUpstream, KindStatus,
	KindUnreachable, KindTimeout, KindCanceled, KindRedirect, KindDecode,
}

func (k Kind) sentinel() error {
	switch k {
	case KindNotFound:
		return ErrNotFound
	case KindInvalid:
		return ErrInvalid
	case KindRateLimited:
		return ErrRateLimited
	case KindUpstream:
		return ErrUpstream
	case KindUnreachable:
		return ErrUnreachable
	case KindTimeout:
		return ErrTimeout
	case KindCanceled:
		return context.Canceled
	case KindRedirect:
		return ErrRedirect
	case KindDecode:
		return ErrDecode
	default:
		return ErrStatus
	}
}

// MaxErrorBody bounds APIError.Body.
const MaxErrorBody = 4 << 10

// maxMessageLen bounds APIError.Message.
const maxMessageLen = 512

// APIError is a failed call. Its Error text names the route template, never
// the request path, and has inbox identifiers and source_ids of the request
// scrubbed out.
type APIError struct {
	Kind  Kind
	Route string // "METHOD template", e.g. "GET /inboxes/{inbox}"
	// Status is the HTTP status, 0 when no response was received.
	Status int
	// Message is Chatwoot's own error message ("message" or "error" in a JSON
	// body), scrubbed and bounded; empty when the body had none.
	Message string
	// Body holds the first MaxErrorBody bytes of the response body, as sent.
	// It is not part of Error() and must not be logged: it is Chatwoot's
	// content and may echo anything.
	Body []byte
	// Err is the underlying cause (network error, decode error), if any.
	Err error
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("chatwoot: ")
	b.WriteString(e.Route)
	b.WriteString(": ")
	if e.Status != 0 {
		b.WriteString(strconv.Itoa(e.Status))
		b.WriteByte(' ')
	}
	b.WriteString(string(e.Kind))
	switch {
	case e.Message != "":
		b.WriteString(": ")
		b.WriteString(e.Message)
	case e.Err != nil:
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Is reports whether target is the sentinel of e's Kind.
func (e *APIError) Is(target error) bool { return target == e.Kind.sentinel() }

// Unwrap returns the underlying cause.
func (e *APIError) Unwrap() error { return e.Err }

// statusKind maps a non-2xx HTTP status to a Kind.
func statusKind(status int) Kind {
	switch {
	case status == 404:
		return KindNotFound
	case status == 422 || status == 400:
		return KindInvalid
	case status == 429:
		return KindRateLimited
	case status >= 500:
		return KindUpstream
	default:
		return KindStatus
	}
}

// statusError builds the error for a non-2xx response whose body (bounded)
// has been read.
func statusError(rt route, status int, body []byte) *APIError {
	return &APIError{
		Kind:    statusKind(status),
		Route:   rt.name(),
		Status:  status,
		Message: rt.scrub(errorMessage(body)),
		Body:    body,
	}
}

// errorMessage extracts Chatwoot's message from a JSON error body: 422 uses
// {"message": "...", "attributes": [...]}, others {"error": "..."}.
func errorMessage(body []byte) string {
	var v struct {
		Message any `json:"message"`
		Error   any `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	for _, m := range []any{v.Message, v.Error} {
		if s, ok := m.(string); ok && s != "" {
			return truncate(s, maxMessageLen)
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// transportError classifies an error from http.Client.Do. parent is the
// caller's context: its cancellation wins over whatever the transport says.
func transportError(rt route, err error, parent context.Context) *APIError {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // url.Error's text contains the full URL
	}
	kind := KindUnreachable
	switch {
	case errors.Is(err, ErrRedirect):
		kind = KindRedirect
	case errors.Is(parent.Err(), context.Canceled):
		kind, err = KindCanceled, context.Canceled
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		kind = KindTimeout
	}
	return &APIError{Kind: kind, Route: rt.name(), Err: scrubbedError{err, rt}}
}

// waitError classifies an error from the limiter wait or the retry sleep.
func waitError(rt route, err error, parent context.Context) *APIError {
	if errors.Is(parent.Err(), context.Canceled) {
		return &APIError{Kind: KindCanceled, Route: rt.name(), Err: context.Canceled}
	}
	return &APIError{Kind: KindTimeout, Route: rt.name(), Err: fmt.Errorf("%w: %w", ErrNotSent, err)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isDialError reports whether err happened while connecting, so the request
// was never sent and any method may be retried.
func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// scrubbedError hides the route's path values from an underlying error's text
// while keeping it reachable for errors.Is and errors.As.
type scrubbedError struct {
	err error
	rt  route
}

func (s scrubbedError) Error() string { return s.rt.scrub(s.err.Error()) }
func (s scrubbedError) Unwrap() error { return s.err }
