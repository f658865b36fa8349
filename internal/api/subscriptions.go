package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/relayhq/relay/internal/store"
)

// Bounds of the subscriptions routes' inputs.
const (
	maxCredentialLen = 255 // pubsub_token, inbox identifier, source_id
	maxIDLen         = 128 // subscription id
	maxCursorLen     = 512
	defaultListLimit = 100
	maxListLimit     = 1000
)

// registerRequest is the body of POST /v1/subscriptions.
type registerRequest struct {
	PubsubToken       string `json:"pubsub_token"`
	InboxIdentifier   string `json:"inbox_identifier"`
	ContactIdentifier string `json:"contact_identifier"` // the contact's source_id
}

func (q registerRequest) validate() error {
	if q.PubsubToken == "" {
		return fmt.Errorf("%w: pubsub_token is required", ErrInvalid)
	}
	if q.ContactIdentifier != "" && q.InboxIdentifier == "" {
		return fmt.Errorf("%w: contact_identifier needs inbox_identifier", ErrInvalid)
	}
	for name, v := range map[string]string{
		"pubsub_token": q.PubsubToken, "inbox_identifier": q.InboxIdentifier, "contact_identifier": q.ContactIdentifier,
	} {
		if err := checkCredential(name, v); err != nil {
			return err
		}
	}
	return nil
}

// checkCredential bounds a token-like value; the error never quotes it.
func checkCredential(name, v string) error {
	if len(v) > maxCredentialLen {
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalid, name, maxCredentialLen)
	}
	for _, c := range []byte(v) {
		if c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: %s must be printable ASCII without spaces", ErrInvalid, name)
		}
	}
	return nil
}

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request) {
	var q registerRequest
	if err := s.decodeJSON(w, r, &q); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := q.validate(); err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	sub, created, err := s.registrations.register(ctx, Registration{
		Token: q.PubsubToken, InboxIdentifier: q.InboxIdentifier, SourceID: q.ContactIdentifier, Origin: OriginAPI,
	})
	if err != nil {
		s.fail(w, r, scrubError(err, q.PubsubToken, q.ContactIdentifier))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", "/v1/subscriptions/"+sub.ID)
	writeJSON(w, status, masked(sub))
}

// subscriptionList is the body of GET /v1/subscriptions.
type subscriptionList struct {
	Subscriptions []Subscription `json:"subscriptions"`
	NextCursor    string         `json:"next_cursor"`
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	state, cursor, limit, err := listParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	subs, next, err := s.opts.Registry.List(ctx, state, cursor, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := make([]Subscription, len(subs))
	for i, sub := range subs {
		out[i] = masked(sub)
	}
	writeJSON(w, http.StatusOK, subscriptionList{Subscriptions: out, NextCursor: next})
}

func listParams(r *http.Request) (state, cursor string, limit int, err error) {
	q := r.URL.Query()
	state, cursor, limit = q.Get("state"), q.Get("cursor"), defaultListLimit
	switch state {
	case "", StatePending, StateConfirmed, StateRetrying, StateParked, StateInvalid:
	default:
		return "", "", 0, fmt.Errorf("%w: state must be one of pending, confirmed, retrying, parked, invalid", ErrInvalid)
	}
	if len(cursor) > maxCursorLen {
		return "", "", 0, fmt.Errorf("%w: cursor is too long", ErrInvalid)
	}
	if v := q.Get("limit"); v != "" {
		limit, err = strconv.Atoi(v)
		if err != nil || limit < 1 || limit > maxListLimit {
			return "", "", 0, fmt.Errorf("%w: limit must be an integer from 1 to %d", ErrInvalid, maxListLimit)
		}
	}
	return state, cursor, limit, nil
}

func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request) {
	id, err := subscriptionID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	sub, err := s.opts.Registry.Get(ctx, id)
	if err != nil {
		s.fail(w, r, notFoundText(err))
		return
	}
	writeJSON(w, http.StatusOK, masked(s.withOwner(ctx, sub)))
}

// masked is sub as the API shows it: with the contact's source_id, the
// inbox identifier is the contact's key to Chatwoot's public API, so only
// its first characters are shown, enough to tell inboxes apart.
func masked(sub Subscription) Subscription {
	if id := sub.InboxIdentifier; id != "" {
		sub.InboxIdentifier = strings.ToValidUTF8(id[:min(4, len(id)/4)], "") + "…"
	}
	return sub
}

func (s *Server) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	id, err := subscriptionID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.withTimeout(r.Context())
	defer cancel()
	if err := s.opts.Registry.Remove(ctx, id); err != nil {
		s.fail(w, r, notFoundText(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// subscriptionID returns the {id} path value; anything that cannot be an id
// is simply not found.
func subscriptionID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if id == "" || len(id) > maxIDLen || checkCredential("id", id) != nil {
		return "", fmt.Errorf("%w: no such subscription", ErrNotFound)
	}
	return id, nil
}

// notFoundText gives the registry's not-found a stable client message.
func notFoundText(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: no such subscription", ErrNotFound)
	}
	return err
}

// decodeJSON reads a strict JSON body into v: application/json only, within
// the body limit, one object, no unknown fields.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	b, err := readBody(w, r, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return fmt.Errorf("%w: request body is empty", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err, dec)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: unexpected data after the JSON object", ErrInvalid)
	}
	return nil
}

func requireJSON(r *http.Request) error {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/json" {
		return fmt.Errorf("%w: Content-Type must be application/json", ErrUnsupportedMediaType)
	}
	return nil
}

// decodeError describes a JSON decoding failure without quoting the input.
func decodeError(err error, dec *json.Decoder) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return fmt.Errorf("%w: field %s has the wrong type", ErrInvalid, te.Field)
	case errors.As(err, &te):
		return fmt.Errorf("%w: the body must be a JSON object", ErrInvalid)
	case errors.As(err, &se):
		return fmt.Errorf("%w: malformed JSON near byte %d", ErrInvalid, se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated JSON", ErrInvalid)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Errorf("%w: %s", ErrInvalid, truncate(strings.TrimPrefix(err.Error(), "json: "), 80))
	}
	return fmt.Errorf("%w: malformed JSON near byte %d", ErrInvalid, dec.InputOffset())
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// scrubError hides secrets from an error's text, in case a registry
// implementation quoted one, keeping errors.Is working.
func scrubError(err error, secrets ...string) error {
	text := err.Error()
	for _, s := range secrets {
		if s != "" {
			text = strings.ReplaceAll(text, s, "REDACTED")
		}
	}
	if text == err.Error() {
		return err
	}
	return scrubbed{text: text, err: err}
}

type scrubbed struct {
	text string
	err  error
}

func (s scrubbed) Error() string { return s.text }
func (s scrubbed) Unwrap() error { return s.err }
