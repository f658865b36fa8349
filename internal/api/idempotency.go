package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/relayhq/relay/internal/store"
)

// maxIdempotencyKeyLen bounds the Idempotency-Key header.
const maxIdempotencyKeyLen = 255

// storedResponse is what an Idempotency-Key replays: the final answer's
// status, content type and body, the echo_id that was sent, and the
// fingerprint of the request it answered.
type storedResponse struct {
	Status      int    `json:"status"`
	ContentType string `json:"content_type,omitempty"`
	EchoID      string `json:"echo_id,omitempty"`
	Body        []byte `json:"body,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

func (sr storedResponse) write(w http.ResponseWriter) {
	if sr.ContentType != "" {
		w.Header().Set("Content-Type", sr.ContentType)
	}
	if sr.EchoID != "" {
		w.Header().Set(headerEchoID, sr.EchoID)
	}
	w.Header().Set(headerReplay, "true")
	w.WriteHeader(sr.Status)
	w.Write(sr.Body)
}

// attempt is what the relay remembers of the sends made with a key whose
// outcome is not final, so that a retry can find out whether the message
// exists before posting it again. It holds no content, only its digest.
type attempt struct {
	Fingerprint string `json:"fingerprint"`
	EchoID      string `json:"echo_id"`
	Started     int64  `json:"started"`  // unix seconds, when the first send began
	Content     string `json:"content"`  // hex SHA-256 of the content field
	Files       int    `json:"files"`    // attachments sent
	Sent        bool   `json:"sent"`     // a send may have reached Chatwoot
	Answered    bool   `json:"answered"` // Chatwoot answered the last send (a 5xx): it is not running any more
}

// idemKeys are the store keys of one Idempotency-Key: lock holds the
// reservation and then the final answer; attempt holds the attempt record.
type idemKeys struct {
	lock, attempt string
}

// idempotencyKey returns the request's Idempotency-Key, "" when absent.
func idempotencyKey(r *http.Request) (string, error) {
	vs := r.Header.Values(headerIdempotencyKey)
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", fmt.Errorf("%w: more than one Idempotency-Key", ErrInvalid)
	}
	k := vs[0]
	if k == "" || len(k) > maxIdempotencyKeyLen {
		return "", fmt.Errorf("%w: Idempotency-Key must have 1 to %d characters", ErrInvalid, maxIdempotencyKeyLen)
	}
	for _, c := range []byte(k) {
		if c < 0x20 || c >= 0x7f {
			return "", fmt.Errorf("%w: Idempotency-Key must be printable ASCII", ErrInvalid)
		}
	}
	return k, nil
}

// idempotencyKeys scopes a client's key to the API token that sent it (two
// API clients never share keys) without storing the token or the key.
// Without API tokens (loopback clients only) there is one scope.
func idempotencyKeys(r *http.Request, key string) idemKeys {
	scope := ""
	if token, ok := bearer(r.Header.Get("Authorization")); ok {
		sum := sha256.Sum256([]byte(token))
		scope = hex.EncodeToString(sum[:])
	}
	k := idempotencyStoreKey(scope, key)
	return idemKeys{lock: k, attempt: k + ":attempt"}
}

func idempotencyStoreKey(scope, key string) string {
	sum := sha256.Sum256([]byte(scope + "\x00" + key))
	return "api:idem:" + hex.EncodeToString(sum[:])
}

// fingerprint identifies a request for Idempotency-Key reuse checks: the
// method, the route with its values unescaped (so 12%2D and 12- are the
// same), the body kind and the body (for multipart, the fingerprint of its
// parts, which does not depend on the boundary).
func fingerprint(method, route, kind string, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", method, route, kind)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// digest is the hex SHA-256 of s.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// reserve takes the key's lock for this request, or returns the final
// answer stored for it.
func (s *Server) reserve(ctx context.Context, key string) (*storedResponse, error) {
	if s.opts.Store == nil {
		return nil, fmt.Errorf("%w: Idempotency-Key is not supported without a store", ErrUnavailable)
	}
	state, b, err := s.opts.Store.ReserveIdempotency(ctx, key, s.opts.IdempotencyLockTTL)
	if err != nil {
		s.log.ErrorContext(ctx, "idempotency store failed; message not sent", "error", err)
		return nil, fmt.Errorf("%w: the idempotency store is unavailable", ErrUnavailable)
	}
	switch state {
	case store.IdempotencyReserved:
		return nil, nil
	case store.IdempotencyInProgress:
		s.m.conflicts.Inc()
		return nil, fmt.Errorf("%w: a request with this Idempotency-Key is in progress", ErrConflict)
	}
	var sr storedResponse
	if err := json.Unmarshal(b, &sr); err != nil || sr.Status == 0 {
		return nil, fmt.Errorf("api: stored idempotent response is corrupt (%d bytes)", len(b))
	}
	return &sr, nil
}

// loadAttempt returns the attempt record of the key whose lock the caller
// holds; nil when there is none.
func (s *Server) loadAttempt(ctx context.Context, k idemKeys) (*attempt, error) {
	state, b, err := s.opts.Store.ReserveIdempotency(ctx, k.attempt, s.opts.IdempotencyLockTTL)
	if err != nil {
		s.log.ErrorContext(ctx, "idempotency store failed; message not sent", "error", err)
		return nil, fmt.Errorf("%w: the idempotency store is unavailable", ErrUnavailable)
	}
	if state != store.IdempotencyCompleted {
		// Reserved: no earlier attempt. In progress: an earlier request died
		// between reserving the record and writing it, so before sending.
		return nil, nil
	}
	var a attempt
	if err := json.Unmarshal(b, &a); err != nil || a.Fingerprint == "" {
		return nil, fmt.Errorf("api: stored idempotency attempt is corrupt (%d bytes)", len(b))
	}
	return &a, nil
}

// saveAttempt writes the attempt record; it must be stored before a send
// can reach Chatwoot.
func (s *Server) saveAttempt(ctx context.Context, k idemKeys, a attempt) error {
	b, err := json.Marshal(a)
	if err == nil {
		err = s.opts.Store.CompleteIdempotency(ctx, k.attempt, b, s.opts.IdempotencyTTL)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "idempotency attempt not stored; message not sent", "error", err)
		return fmt.Errorf("%w: the idempotency store is unavailable", ErrUnavailable)
	}
	return nil
}

// complete stores the final answer a key replays from now on.
func (s *Server) complete(ctx context.Context, key string, sr storedResponse) {
	b, err := json.Marshal(sr)
	if err == nil {
		err = s.opts.Store.CompleteIdempotency(ctx, key, b, s.opts.IdempotencyTTL)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "idempotency key not completed; a retry looks the message up again",
			"error", err)
	}
}

// release frees the key's lock so that a retry can proceed.
func (s *Server) release(ctx context.Context, key string) {
	if err := s.opts.Store.ReleaseIdempotency(ctx, key); err != nil {
		s.log.ErrorContext(ctx, "idempotency key not released; retries get 409 until the lock expires", "error", err)
	}
}

// settleContext bounds store writes after the request's own time is used
// up.
func settleContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
}

// unixNow is the attempt clock.
func unixNow() int64 { return time.Now().Unix() }
