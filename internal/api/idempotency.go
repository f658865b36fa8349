package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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
	Started     int64  `json:"started"`                // unix seconds, when the first send began: the lookup's window
	LastStarted int64  `json:"last_started,omitempty"` // unix seconds, when the last send began: the running window
	Content     string `json:"content"`                // hex SHA-256 of the content field
	Files       int    `json:"files"`                  // attachments sent
	Sent        bool   `json:"sent"`                   // a send may have reached Chatwoot
	Answered    bool   `json:"answered"`               // Rails answered the last send (its 500): it is not running any more
}

// lastStarted is when the last send of the attempt began.
func (a attempt) lastStarted() int64 { return max(a.Started, a.LastStarted) }

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
// same) and its query (proxyCall.identity), the body kind and the body (for multipart, the fingerprint of its
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

// keyedSend sends a message at most once per Idempotency-Key.
//
// Only final outcomes are stored and replayed (Idempotent-Replay: true): a
// 2xx, or a message found by the lookup below. A request reusing the key
// with another method, route or body gets 422 and sends nothing.
//
// Every send first stores an attempt record (fingerprint, echo_id, start
// time, digest of the content, number of attachments) and then posts. When
// Chatwoot certainly did not create the message (a 4xx, a refused
// connection, a body cut off), the key is released and a retry posts again.
// When the outcome is unknown (a 5xx, a timeout, a connection lost after
// sending) the client gets that answer, the key is released and the attempt
// record stays: the retry resolves it with lookup (resolve.go) before
// posting anything: found -> answered with the message as Chatwoot's 200
// would, certainly absent -> posted again with the same echo_id, cannot
// tell -> 503 with Retry-After and the key stays unsettled.
func (s *Server) keyedSend(ctx context.Context, w http.ResponseWriter, r *http.Request, pc proxyCall, mb messageBody, k idemKeys) {
	stored, err := s.reserve(ctx, k.lock)
	switch {
	case errors.Is(err, ErrConflict):
		w.Header().Set("Retry-After", "1")
		s.fail(w, r, err)
		return
	case err != nil:
		s.fail(w, r, err)
		return
	case stored != nil:
		s.replay(w, r, pc, mb, *stored)
		return
	}
	plan, done := s.planSend(ctx, w, r, pc, mb, k)
	if done {
		return
	}
	res := s.sendMessage(ctx, w, r, pc, mb, &plan)
	defer res.close()
	s.settle(ctx, k, plan, res)
	s.answer(w, r, pc, res)
}

// replay answers a completed key with its stored answer, or 422 when the
// request is not the one that was answered.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, pc proxyCall, mb messageBody, sr storedResponse) {
	fp, err := s.bodyFingerprint(w, r, pc, mb)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if sr.Fingerprint != "" && sr.Fingerprint != fp {
		s.fail(w, r, errKeyReused)
		return
	}
	s.m.replays.Inc()
	sr.write(w)
}

// errKeyReused answers a key sent again with another request.
var errKeyReused = fmt.Errorf("%w: this Idempotency-Key was used with a different request (method, path, query or body)", ErrKeyReused)

// planSend decides, holding the key's lock, how to send: fresh, or again
// after an earlier unknown outcome was found absent. done reports that the
// request was answered instead (found, 422, 503); the lock is then settled.
func (s *Server) planSend(ctx context.Context, w http.ResponseWriter, r *http.Request, pc proxyCall, mb messageBody, k idemKeys) (plan sendPlan, done bool) {
	plan.keys = &k
	prev, err := s.loadAttempt(ctx, k)
	switch {
	case err != nil:
		s.releaseAndFail(ctx, w, r, k, err)
		return plan, true
	case prev == nil:
		return plan, false
	case mb.fingerprint != "" && mb.fingerprint != prev.Fingerprint:
		s.releaseAndFail(ctx, w, r, k, errKeyReused)
		return plan, true
	}
	plan.prev = prev
	if !prev.Sent {
		return plan, false // nothing was created: sent afresh, same echo_id
	}
	switch found, err := s.lookup(ctx, pc, *prev); {
	case err != nil:
		s.m.lookups.WithLabelValues(lookupUndecided).Inc()
		s.releaseAndFail(ctx, w, r, k, err)
		return plan, true
	case found != nil:
		s.m.lookups.WithLabelValues(lookupFound).Inc()
		s.answerFound(ctx, w, r, pc, mb, k, *prev, found)
		return plan, true
	}
	s.m.lookups.WithLabelValues(lookupAbsent).Inc()
	return plan, false
}

// releaseAndFail frees the key's lock and answers err.
func (s *Server) releaseAndFail(ctx context.Context, w http.ResponseWriter, r *http.Request, k idemKeys, err error) {
	sctx, cancel := settleContext(ctx)
	defer cancel()
	s.release(sctx, k.lock)
	var ue *undecidedError
	if errors.As(err, &ue) {
		w.Header().Set("Retry-After", strconv.Itoa(ue.retryAfter))
	}
	s.fail(w, r, err)
}

// answerFound answers with the message an earlier send created, as
// Chatwoot's 200 would have, and completes the key with it.
func (s *Server) answerFound(ctx context.Context, w http.ResponseWriter, r *http.Request, pc proxyCall, mb messageBody, k idemKeys, prev attempt, msg []byte) {
	if fp, err := s.bodyFingerprint(w, r, pc, mb); err != nil || fp != prev.Fingerprint {
		if err == nil {
			err = errKeyReused
		}
		s.releaseAndFail(ctx, w, r, k, err)
		return
	}
	sr := storedResponse{Status: http.StatusOK, ContentType: "application/json; charset=utf-8", EchoID: prev.EchoID,
		Body: msg, Fingerprint: prev.Fingerprint}
	sctx, cancel := settleContext(ctx)
	defer cancel()
	if s.complete(sctx, k.lock, sr) != nil {
		s.release(sctx, k.lock) // the retry finds the message again
	}
	sr.write(w)
}

// sendPlan is how a message is sent under an Idempotency-Key (keys nil: no
// key).
type sendPlan struct {
	keys *idemKeys
	// prev is the earlier attempt: it created nothing, or it was found
	// absent. The message is sent again with its echo_id.
	prev *attempt
	// saved is the attempt record stored before this send (set by
	// beforeEnd).
	saved attempt
}

// beforeEnd runs before the end of the body can reach Chatwoot: it checks
// the fingerprint against an earlier attempt and stores this attempt. An
// error keeps the body from being sent.
func (s *Server) beforeEnd(ctx context.Context, plan *sendPlan, a attempt) error {
	if plan.keys == nil {
		return nil
	}
	if p := plan.prev; p != nil {
		if a.Fingerprint != p.Fingerprint {
			return errKeyReused
		}
		if p.Sent {
			// The lookup's window starts at the first send, the running
			// window at this one.
			a.Started, a.LastStarted = p.Started, a.Started
		}
	}
	a.Sent = true
	plan.saved = a
	return s.saveAttempt(ctx, *plan.keys, a)
}

// settle records the outcome of a keyed send and frees the key's lock:
//
//   - 2xx: final; stored and replayed from now on;
//   - certainly not created (4xx, refused connection, body cut off or never
//     sent): the attempt record goes back to what it was before this send
//     (none, or the earlier attempt that was found absent);
//   - a 500 that Rails produced: the request is not running any more (the
//     lookup need not wait for it); the outcome stays unknown;
//   - another 5xx (a gateway's 502, 503, 504, Cloudflare's 52x), a timeout
//     or a lost connection: unknown, and Rails may still be running the
//     create; the record stays as stored.
//
// When the final answer cannot be stored, the lock is released all the
// same: the attempt record lets the retry find the message.
func (s *Server) settle(ctx context.Context, k idemKeys, plan sendPlan, res sendResult) {
	ctx, cancel := settleContext(ctx)
	defer cancel()
	status := 0
	if res.resp != nil {
		status = res.resp.StatusCode
	}
	switch {
	case status >= 200 && status < 300:
		if s.complete(ctx, k.lock, res.stored(plan.saved.Fingerprint)) == nil {
			return
		}
	case status >= 500:
		if railsAnswered(res) {
			a := plan.saved
			a.Answered = true
			s.saveAttempt(ctx, k, a) // a failure is logged; the retry then waits for the grace period
		}
	case !res.mayHaveRun && plan.saved.Sent:
		prev := plan.saved
		prev.Sent = false
		if plan.prev != nil && plan.prev.Sent {
			prev = *plan.prev
		}
		s.saveAttempt(ctx, k, prev) // a failure is logged; the retry then looks up once more
	}
	s.release(ctx, k.lock)
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

// complete stores the final answer a key replays from now on. On failure
// (logged) the caller releases the lock.
func (s *Server) complete(ctx context.Context, key string, sr storedResponse) error {
	b, err := json.Marshal(sr)
	if err == nil {
		err = s.opts.Store.CompleteIdempotency(ctx, key, b, s.opts.IdempotencyTTL)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "idempotency key not completed; a retry looks the message up again",
			"error", err)
	}
	return err
}

// railsAnswered reports whether a 5xx answer is Rails' own (a 500 with
// Chatwoot's JSON error body, {"status":500,"error":...}): the create has
// ended. A gateway's 5xx in front of Rails (nginx's 502 or 504 HTML page,
// Cloudflare's 52x) says nothing of whether Rails is still running it.
func railsAnswered(res sendResult) bool {
	if res.resp.StatusCode != http.StatusInternalServerError || !res.complete ||
		!strings.Contains(res.resp.Header.Get("Content-Type"), "json") {
		return false
	}
	var body struct {
		Status json.RawMessage `json:"status"`
		Error  json.RawMessage `json:"error"`
	}
	return json.Unmarshal(res.body, &body) == nil && (body.Status != nil || body.Error != nil)
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
