package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/store"
)

// Sentinel errors. Handlers wrap them with %w and a message meant for the
// client; Error maps them to a status and an error code.
var (
	// ErrInvalid: the request is malformed (400).
	ErrInvalid = errors.New("api: invalid request")
	// ErrTooLarge: the request body is over its limit (413).
	ErrTooLarge = errors.New("api: request body too large")
	// ErrBodyTimeout: the request body did not arrive within its read
	// deadline (408).
	ErrBodyTimeout = errors.New("api: request body timeout")
	// ErrUnsupportedMediaType: the body's content type is not accepted (415).
	ErrUnsupportedMediaType = errors.New("api: unsupported content type")
	// ErrMethodNotAllowed: the route exists with other methods (405).
	ErrMethodNotAllowed = errors.New("api: method not allowed")
	// ErrUnauthorized: missing or wrong bearer token (401).
	ErrUnauthorized = errors.New("api: unauthorized")
	// ErrForbidden: the client may not use this route: its token lacks the
	// scope or inbox, or, without tokens, the request is not local (403).
	ErrForbidden = errors.New("api: forbidden")
	// ErrNotFound: no such route or subscription (404).
	ErrNotFound = errors.New("api: not found")
	// ErrConflict: the same Idempotency-Key is being processed (409).
	ErrConflict = errors.New("api: conflict")
	// ErrUnavailable: a dependency (registry, idempotency store) cannot
	// serve the request now (503).
	ErrUnavailable = errors.New("api: unavailable")
	// ErrLimit: the relay holds RELAY_MAX_SUBSCRIPTIONS subscriptions and
	// refuses new ones (507).
	ErrLimit = errors.New("api: subscription limit reached")
	// ErrKeyReused: an Idempotency-Key sent again with another method, path
	// or body (422).
	ErrKeyReused = errors.New("api: idempotency key reused")
	// ErrOutcomeUnknown: Chatwoot may have executed a request whose answer
	// was lost (timeout or broken connection). Its status is that of the
	// underlying Chatwoot error.
	ErrOutcomeUnknown = errors.New("api: outcome unknown")
)

// Error codes of the JSON error body.
const (
	CodeInvalid      = "invalid"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeKeyReused    = "idempotency_key_reused"
	CodeUpstream     = "upstream"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
	CodeLimit        = "limit"
)

// statusClientClosed is answered (to nobody) when the client went away
// before the answer, so metrics count it as a client-side outcome.
const statusClientClosed = 499

// ErrorBody is the JSON body of every error the relay itself answers.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is an error's code and human-readable message.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error writes err as the JSON error body with the status its kind maps to.
// It is the one place where errors become statuses; see classify. On
// proxied routes the body has Chatwoot's shape (see writeChatwootError).
func Error(w http.ResponseWriter, r *http.Request, err error) {
	status, body := errorResponse(err)
	if isProxied(r) {
		writeChatwootError(w, status, body.Error)
		return
	}
	writeJSON(w, status, body)
}

// errorResponse returns the status and body Error writes for err.
func errorResponse(err error) (int, ErrorBody) {
	status, code, msg := classify(err)
	return status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg}}
}

// classify maps an error to a status, a code and a client-facing message.
// Messages of client errors are the error's own text, which handlers build
// without secrets; upstream and internal failures get fixed texts.
func classify(err error) (status int, code, msg string) {
	if s, c, m, ok := classifyClient(err); ok {
		return s, c, m
	}
	if s, c, m, ok := classifyUpstream(err); ok {
		if errors.Is(err, ErrOutcomeUnknown) {
			m += "; the request may have been executed: retry with the same Idempotency-Key, or check before sending it again"
		}
		return s, c, m
	}
	switch {
	case errors.Is(err, ErrUnavailable), errors.Is(err, store.ErrClosed):
		return http.StatusServiceUnavailable, CodeUnavailable, clientText(err)
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, CodeUnavailable, "the relay timed out"
	case errors.Is(err, context.Canceled):
		return statusClientClosed, CodeUnavailable, "request canceled"
	}
	return http.StatusInternalServerError, CodeInternal, "internal error"
}

func classifyClient(err error) (int, string, string, bool) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, CodeInvalid, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit), true
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge, CodeInvalid, clientText(err), true
	case errors.Is(err, ErrBodyTimeout):
		return http.StatusRequestTimeout, CodeInvalid, clientText(err), true
	case errors.Is(err, ErrUnsupportedMediaType):
		return http.StatusUnsupportedMediaType, CodeInvalid, clientText(err), true
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed, CodeInvalid, clientText(err), true
	case errors.Is(err, ErrInvalid), errors.Is(err, store.ErrInvalid), errors.Is(err, chatwoot.ErrArgument):
		return http.StatusBadRequest, CodeInvalid, clientText(err), true
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, CodeUnauthorized, clientText(err), true
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, CodeForbidden, clientText(err), true
	case errors.Is(err, ErrNotFound), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, CodeNotFound, clientText(err), true
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, CodeConflict, clientText(err), true
	case errors.Is(err, ErrLimit):
		return http.StatusInsufficientStorage, CodeLimit, clientText(err), true
	case errors.Is(err, ErrKeyReused):
		return http.StatusUnprocessableEntity, CodeKeyReused, clientText(err), true
	}
	return 0, "", "", false
}

// classifyUpstream maps a failed Chatwoot call (no usable response).
func classifyUpstream(err error) (int, string, string, bool) {
	switch {
	case errors.Is(err, chatwoot.ErrTimeout):
		return http.StatusGatewayTimeout, CodeUpstream, "chatwoot did not answer in time", true
	case errors.Is(err, chatwoot.ErrUnreachable):
		return http.StatusBadGateway, CodeUpstream, "chatwoot is unreachable", true
	case errors.Is(err, chatwoot.ErrRedirect):
		return http.StatusBadGateway, CodeUpstream, "chatwoot redirected elsewhere", true
	case errors.Is(err, errUpstreamBody):
		return http.StatusBadGateway, CodeUpstream, "chatwoot's response could not be read", true
	}
	return 0, "", "", false
}

// errUpstreamBody: reading a Chatwoot response body failed midway.
var errUpstreamBody = errors.New("api: reading chatwoot's response failed")

// clientText is an error's text without the package prefix.
func clientText(err error) string {
	return strings.TrimPrefix(err.Error(), "api: ")
}

// writeJSON writes v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// Headers that carry the relay's own error code and message on proxied
// routes, where the body has Chatwoot's shape.
const (
	headerError        = "Relay-Error"
	headerErrorMessage = "Relay-Error-Message"
)

// ChatwootError is the body Chatwoot (Rails' public exceptions app) answers
// errors with: {"status":404,"error":"Not Found"}.
type ChatwootError struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
}

// ChatwootValidationError is the body of Chatwoot's 422 answers
// (ActiveRecord::RecordInvalid): {"message":"...","attributes":[...]}.
type ChatwootValidationError struct {
	Message    string   `json:"message"`
	Attributes []string `json:"attributes"`
}

// isProxied reports whether r is on Chatwoot's public API, whose clients
// parse Chatwoot's error bodies.
func isProxied(r *http.Request) bool {
	return r != nil && strings.HasPrefix(r.URL.Path, chatwoot.APIPrefix+"/")
}

// writeChatwootError writes an error the relay answers on a proxied route
// in Chatwoot's shape, so that client code written for Chatwoot keeps
// working: a 422 as a validation error carrying the relay's message, any
// other status as Rails' {"status":N,"error":"<reason phrase>"}. The relay's
// code and message are in the Relay-Error and Relay-Error-Message headers.
func writeChatwootError(w http.ResponseWriter, status int, d ErrorDetail) {
	var v any = ChatwootError{Status: status, Error: railsReason(status)}
	if status == http.StatusUnprocessableEntity {
		v = ChatwootValidationError{Message: d.Message, Attributes: []string{}}
	}
	b, _ := json.Marshal(v)
	h := w.Header()
	h.Set(headerError, d.Code)
	h.Set(headerErrorMessage, headerText(d.Message))
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}

// railsReason is the reason phrase Rails puts in an error body (Rack 2's
// HTTP_STATUS_CODES; unknown statuses get the 500 phrase).
func railsReason(status int) string {
	switch status {
	case http.StatusRequestEntityTooLarge:
		return "Payload Too Large"
	case statusClientClosed:
		return http.StatusText(http.StatusInternalServerError)
	}
	if t := http.StatusText(status); t != "" {
		return t
	}
	return http.StatusText(http.StatusInternalServerError)
}

// headerText makes a message safe for a header value: printable ASCII only.
func headerText(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}
