package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/relayhq/relay/internal/chatwoot"
)

// settleTimeout bounds completing or releasing an idempotency key after the
// request's own time is used up.
const settleTimeout = 10 * time.Second

// errResponded stops streaming a body Chatwoot answered before reading all
// of it.
var errResponded = errors.New("api: chatwoot answered before the end of the body")

// proxyMessageCreate forwards a message create: echo_id filled in and
// returned, Idempotency-Key honoured, ?wait=echo waited for.
//
// Idempotency keeps a send at most once per key: the key is released (a
// retry sends again) only when Chatwoot certainly did not create the
// message: a 4xx answer (404, 422, 429: nothing was created) or a request
// that never left the relay (connection refused). Every other outcome is
// stored and replayed for IdempotencyTTL, including 5xx answers and
// timeouts, after which the message may or may not exist: retrying with the
// same key returns the same 5xx/504, and the client decides (the echo_id in
// Relay-Echo-Id lets it look for the message on the event stream).
func (s *Server) proxyMessageCreate(w http.ResponseWriter, r *http.Request, pc proxyCall) {
	key, err := idempotencyKey(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	mb, err := s.readMessageBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Not cancelled with the client: once sent, the outcome is recorded.
	ctx, cancel := s.withTimeout(context.WithoutCancel(r.Context()))
	defer cancel()
	if key != "" {
		key = idempotencyStoreKey(pc.path, key)
		if done := s.replayOrConflict(ctx, w, r, key); done {
			return
		}
	}
	res := s.sendMessage(ctx, w, r, pc, mb)
	defer res.close()
	s.settle(ctx, key, res)
	s.answer(w, r, pc, res)
}

// replayOrConflict reserves key; it reports true when it already answered
// (replay, conflict, store failure).
func (s *Server) replayOrConflict(ctx context.Context, w http.ResponseWriter, r *http.Request, key string) bool {
	replay, err := s.reserve(ctx, key)
	switch {
	case errors.Is(err, ErrConflict):
		w.Header().Set("Retry-After", "1")
		s.fail(w, r, err)
	case err != nil:
		s.fail(w, r, err)
	case replay != nil:
		w.Header().Set(headerReplay, "true")
		replay.write(w)
	default:
		return false
	}
	return true
}

// messageBody is a checked message create body.
type messageBody struct {
	data        []byte // JSON or form, echo_id filled in
	contentType string
	echoID      string
	boundary    string // multipart: streamed, echo_id found while streaming
}

func (s *Server) readMessageBody(w http.ResponseWriter, r *http.Request) (messageBody, error) {
	kind, boundary := bodyKind(r)
	switch kind {
	case kindNone:
		id := newEchoID()
		return messageBody{data: object(nil).set("echo_id", id).encode(), contentType: "application/json", echoID: id}, nil
	case kindMultipart:
		if r.ContentLength > s.opts.MaxMultipartBytes {
			return messageBody{}, &http.MaxBytesError{Limit: s.opts.MaxMultipartBytes}
		}
		return messageBody{boundary: boundary}, nil
	case kindJSON, kindForm:
		b, err := readBody(w, r, s.opts.MaxBodyBytes)
		if err != nil {
			return messageBody{}, err
		}
		mb := messageBody{contentType: r.Header.Get("Content-Type")}
		mb.data, mb.echoID, err = fillEchoID(kind, b)
		return mb, err
	}
	return messageBody{}, fmt.Errorf("%w: message create takes application/json, "+
		"application/x-www-form-urlencoded or multipart/form-data", ErrUnsupportedMediaType)
}

// fillEchoID returns the body with an echo_id (the client's, or a new one)
// and that echo_id.
func fillEchoID(kind string, b []byte) ([]byte, string, error) {
	if kind == kindJSON {
		o, err := parseObject(b)
		if err != nil {
			return nil, "", err
		}
		if id := o.text("echo_id"); id != "" {
			return b, id, nil
		}
		id := newEchoID()
		return o.set("echo_id", id).encode(), id, nil
	}
	f, err := parseForm(b)
	if err != nil {
		return nil, "", err
	}
	if id := f.text("echo_id"); id != "" {
		return b, id, nil
	}
	id := newEchoID()
	return []byte(f.add("echo_id", id).raw), id, nil
}

// sendResult is the outcome of sending a message create.
type sendResult struct {
	resp     *http.Response // nil when err is set
	body     []byte
	complete bool // body holds the whole response body
	echoID   string
	echo     echoWait
	err      error
	// mayHaveRun: err is set but Chatwoot may have created the message.
	mayHaveRun bool
}

func (res *sendResult) close() {
	discardResponse(res.resp)
	res.echo.release()
}

// sendMessage posts the message. The echo expectation is registered before
// the end of the body is sent: the echo can arrive before the response.
func (s *Server) sendMessage(ctx context.Context, w http.ResponseWriter, r *http.Request, pc proxyCall, mb messageBody) (res sendResult) {
	onEcho := func(id string) {
		res.echoID = id
		if pc.waitEcho {
			res.echo = s.expectEcho(id)
		}
	}
	var mp *multipartSend
	var body io.Reader
	ct := mb.contentType
	if mb.boundary != "" {
		mp = startMultipart(http.MaxBytesReader(w, r.Body, s.opts.MaxMultipartBytes), mb.boundary, multipartEdit{
			read: []string{"echo_id"},
			end: func(p multipartParts) ([]formField, error) {
				if id := p.fields["echo_id"]; id != "" {
					onEcho(id)
					return nil, nil
				}
				id := newEchoID()
				onEcho(id)
				return []formField{{"echo_id", id}}, nil
			},
		})
		body, ct = mp, mp.contentType
	} else {
		onEcho(mb.echoID)
		body = bytesBody(mb.data)
	}
	resp, err := s.opts.Chatwoot.Do(ctx, http.MethodPost, pc.target(), body, forwardHeader(r, ct))
	if mp != nil {
		if cerr := mp.finish(resp != nil); cerr != nil { // the body never ended: nothing was created
			discardResponse(resp)
			res.err = cerr
			return res
		}
	}
	res.setResponse(resp, err, s.opts.MaxResponseBytes)
	return res
}

func (res *sendResult) setResponse(resp *http.Response, err error, limit int64) {
	if err != nil {
		res.err, res.mayHaveRun = err, !notSent(err)
		if res.mayHaveRun {
			res.err = fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		}
		return
	}
	res.resp = resp
	res.body, res.complete, err = readResponse(resp, limit)
	if err != nil {
		res.resp.Body.Close()
		res.resp, res.err, res.mayHaveRun = nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err), true
		return
	}
	if res.complete {
		resp.Body.Close()
	}
}

// notSent reports errors after which Chatwoot cannot have run the request.
func notSent(err error) bool {
	var oe *net.OpError
	return errors.Is(err, chatwoot.ErrArgument) || errors.Is(err, chatwoot.ErrNotSent) || (errors.As(err, &oe) && oe.Op == "dial")
}

// settle completes or releases the idempotency key (none: key is "").
func (s *Server) settle(ctx context.Context, key string, res sendResult) {
	if key == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	rejected := res.resp != nil && res.resp.StatusCode >= 400 && res.resp.StatusCode < 500
	if rejected || (res.err != nil && !res.mayHaveRun) {
		s.release(ctx, key)
		return
	}
	s.complete(ctx, key, res.stored())
}

// stored is the response a retry with the same key gets. A response larger
// than MaxResponseBytes is stored without its body.
func (res sendResult) stored() storedResponse {
	if res.err != nil {
		status, body := errorResponse(res.err)
		b, _ := json.Marshal(body)
		return storedResponse{Status: status, ContentType: "application/json", EchoID: res.echoID, Body: append(b, '\n')}
	}
	sr := storedResponse{Status: res.resp.StatusCode, ContentType: res.resp.Header.Get("Content-Type"), EchoID: res.echoID}
	if res.complete {
		sr.Body = res.body
	}
	return sr
}

// answer writes the result, after waiting for the echo when asked to.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, pc proxyCall, res sendResult) {
	if res.echoID != "" {
		w.Header().Set(headerEchoID, res.echoID)
	}
	if res.err != nil {
		s.fail(w, r, res.err)
		return
	}
	ok := res.resp.StatusCode >= 200 && res.resp.StatusCode < 300
	if pc.waitEcho && ok && res.complete {
		w.Header().Set(headerEcho, s.awaitEcho(r.Context(), res.echo))
	}
	writeResponse(w, res.resp, res.body, res.complete)
}

// echoWait is one registered expectation.
type echoWait struct {
	wait   func(context.Context) bool
	cancel func()
	ok     bool // false: not registered (tracker full)
}

func (s *Server) expectEcho(id string) echoWait {
	wait, cancel, ok := s.opts.Echoes.expect(id)
	return echoWait{wait: wait, cancel: cancel, ok: ok}
}

func (e echoWait) release() {
	if e.cancel != nil {
		e.cancel()
	}
}

// awaitEcho waits at most EchoWait for the echo and returns the
// Relay-Echo header value: received or timeout.
func (s *Server) awaitEcho(ctx context.Context, e echoWait) string {
	if !e.ok {
		s.m.echoWaits.WithLabelValues(echoOverflow).Inc()
		return echoTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, s.opts.EchoWait)
	defer cancel()
	outcome := echoReceived
	if !e.wait(wctx) {
		outcome = echoTimeout
		if ctx.Err() != nil {
			outcome = echoCanceled
		}
	}
	s.m.echoWaits.WithLabelValues(outcome).Inc()
	return outcome
}
