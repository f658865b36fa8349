package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/relayhq/relay/internal/store"
)

// maxIdempotencyKeyLen bounds the Idempotency-Key header.
const maxIdempotencyKeyLen = 255

// storedResponse is what an Idempotency-Key replays: the first answer's
// status, content type and body, and the echo_id that was sent.
type storedResponse struct {
	Status      int    `json:"status"`
	ContentType string `json:"content_type,omitempty"`
	EchoID      string `json:"echo_id,omitempty"`
	Body        []byte `json:"body,omitempty"`
}

func (sr storedResponse) write(w http.ResponseWriter) {
	if sr.ContentType != "" {
		w.Header().Set("Content-Type", sr.ContentType)
	}
	if sr.EchoID != "" {
		w.Header().Set(headerEchoID, sr.EchoID)
	}
	w.WriteHeader(sr.Status)
	w.Write(sr.Body)
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

// idempotencyStoreKey scopes a client's key to the request path without
// storing the path, which holds the contact's source_id.
func idempotencyStoreKey(path, key string) string {
	sum := sha256.Sum256([]byte(path + "\x00" + key))
	return "api:idem:" + hex.EncodeToString(sum[:])
}

// reserve takes the key for this request, or returns the response to replay.
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
	s.m.replays.Inc()
	return &sr, nil
}

// complete stores the response a key replays from now on.
func (s *Server) complete(ctx context.Context, key string, sr storedResponse) {
	b, err := json.Marshal(sr)
	if err == nil {
		err = s.opts.Store.CompleteIdempotency(ctx, key, b, s.opts.IdempotencyTTL)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "idempotency key not completed; a retry after the lock expires may send again",
			"error", err)
	}
}

// release frees the key so that a retry can send.
func (s *Server) release(ctx context.Context, key string) {
	if err := s.opts.Store.ReleaseIdempotency(ctx, key); err != nil {
		s.log.ErrorContext(ctx, "idempotency key not released; retries get 409 until the lock expires", "error", err)
	}
}
