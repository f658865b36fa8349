package api

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
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
// returned, Idempotency-Key honoured (see keyedSend), ?wait=echo waited for.
func (s *Server) proxyMessageCreate(w http.ResponseWriter, r *http.Request, pc proxyCall) {
	key, err := idempotencyKey(r)
	if err == nil {
		err = checkMessageQuery(pc.query, key != "")
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	mb, err := s.readMessageBody(w, r, pc)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Not cancelled with the client: once sent, the outcome is recorded.
	ctx, cancel := s.withSendTimeout(context.WithoutCancel(r.Context()), mb.boundary != "")
	defer cancel()
	if key != "" {
		s.keyedSend(ctx, w, r, pc, mb, idempotencyKeys(r, key))
		return
	}
	res := s.sendMessage(ctx, w, r, pc, mb, &sendPlan{})
	defer res.close()
	s.answer(w, r, pc, res)
}

// checkMessageQuery refuses the message fields the relay reads from the
// body when the query holds them too: Rails merges query parameters into
// params over the body's, so Chatwoot would create the message with the
// query's echo_id (not the one the relay sent, answers in Relay-Echo-Id
// and waits for) or, on a keyed send, with content the attempt's digest
// does not describe (the lookup would never find the message).
func checkMessageQuery(query string, keyed bool) error {
	for pair := range strings.SplitSeq(query, "&") {
		k, _, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			continue // Rack refuses a malformed query itself
		}
		name, _, _ = strings.Cut(name, "[") // content[] and content[x] are content to Rails
		switch {
		case name == "echo_id":
			return fmt.Errorf("%w: echo_id must be sent in the body, not in the query", ErrInvalid)
		case name == "content" && keyed:
			return fmt.Errorf("%w: with an Idempotency-Key, content must be sent in the body, not in the query", ErrInvalid)
		}
	}
	return nil
}

// messageBody is a checked message create body.
type messageBody struct {
	kind        string
	raw         []byte // JSON or form as sent
	contentType string
	boundary    string // multipart: streamed, read while streaming
	fingerprint string // "" for multipart: known at the end of the stream
	content     string // hex SHA-256 of the content field (not multipart)
	clientEcho  string // the client's echo_id, "" when it sent none
}

func (s *Server) readMessageBody(w http.ResponseWriter, r *http.Request, pc proxyCall) (messageBody, error) {
	kind, boundary := bodyKind(r)
	mb := messageBody{kind: kind, contentType: r.Header.Get("Content-Type"), boundary: boundary}
	switch kind {
	case kindNone:
		mb.contentType, mb.content = "application/json", digest("")
	case kindMultipart:
		if r.ContentLength > s.opts.MaxMultipartBytes {
			return messageBody{}, &http.MaxBytesError{Limit: s.opts.MaxMultipartBytes}
		}
		return mb, nil
	case kindJSON, kindForm:
		b, err := readBody(w, r, s.opts.MaxBodyBytes)
		if err != nil {
			return messageBody{}, err
		}
		mb.raw = b
		if err := mb.readFields(); err != nil {
			return messageBody{}, err
		}
	default:
		return messageBody{}, fmt.Errorf("%w: message create takes application/json, "+
			"application/x-www-form-urlencoded or multipart/form-data", ErrUnsupportedMediaType)
	}
	mb.fingerprint = fingerprint(r.Method, pc.identity(), kind, mb.raw)
	return mb, nil
}

// readFields reads echo_id and content of a JSON or form body.
func (mb *messageBody) readFields() error {
	if mb.kind == kindJSON {
		o, err := parseObject(mb.raw)
		if err != nil {
			return err
		}
		mb.clientEcho, mb.content = o.text("echo_id"), digest(o.text("content"))
		return nil
	}
	f, err := parseForm(mb.raw)
	if err != nil {
		return err
	}
	mb.clientEcho, mb.content = f.text("echo_id"), digest(f.text("content"))
	return nil
}

// withEcho returns the JSON or form body to send and its echo_id: the
// client's, else id, else a new one.
func (mb messageBody) withEcho(id string) ([]byte, string) {
	if mb.clientEcho != "" {
		return mb.raw, mb.clientEcho
	}
	if id == "" {
		id = newEchoID()
	}
	switch mb.kind {
	case kindNone:
		return object(nil).set("echo_id", id).encode(), id
	case kindJSON:
		o, _ := parseObject(mb.raw) // parsed before
		return o.set("echo_id", id).encode(), id
	}
	f, _ := parseForm(mb.raw)
	return []byte(f.add("echo_id", id).raw), id
}

// bodyFingerprint is the request's fingerprint; a multipart body is read
// to its end (and discarded) to compute it.
func (s *Server) bodyFingerprint(w http.ResponseWriter, r *http.Request, pc proxyCall, mb messageBody) (string, error) {
	if mb.boundary == "" {
		return mb.fingerprint, nil
	}
	var fp string
	mp := startMultipart(http.MaxBytesReader(w, r.Body, s.opts.MaxMultipartBytes), mb.boundary, multipartEdit{
		end: func(p multipartParts) ([]formField, error) {
			fp = fingerprint(r.Method, pc.identity(), kindMultipart, p.fingerprint)
			return nil, nil
		},
	})
	io.Copy(io.Discard, mp)
	if err := mp.finish(false); err != nil {
		return "", err
	}
	return fp, nil
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

// sendMessage posts the message. The echo expectation is registered and
// the attempt record stored before the end of the body is sent: the echo
// can arrive before the response.
func (s *Server) sendMessage(ctx context.Context, w http.ResponseWriter, r *http.Request, pc proxyCall, mb messageBody, plan *sendPlan) (res sendResult) {
	prevEcho := ""
	if plan.prev != nil {
		prevEcho = plan.prev.EchoID
	}
	ready := func(id, fp, content string, files int) error {
		res.echoID = id
		if pc.waitEcho {
			res.echo = s.expectEcho(id)
		}
		return s.beforeEnd(ctx, plan, attempt{Fingerprint: fp, EchoID: id, Started: unixNow(), Content: content, Files: files})
	}
	body, ct, mp, err := s.messageStream(w, r, pc, mb, prevEcho, ready)
	if err != nil {
		res.err = err
		return res
	}
	resp, err := s.opts.Chatwoot.Do(ctx, http.MethodPost, pc.target(), body, forwardHeader(r, ct))
	whole := true
	if mp != nil {
		if cerr := mp.finish(resp != nil); cerr != nil { // the body never ended: nothing was created
			discardResponse(resp)
			res.err = cerr
			return res
		}
		whole = mp.sentWhole()
	}
	res.setResponse(resp, err, s.opts.MaxResponseBytes, whole)
	return res
}

// messageStream returns the body to post. ready is called with the echo_id
// and what identifies the message before the end of the body can be sent;
// its error keeps the body from being sent.
func (s *Server) messageStream(w http.ResponseWriter, r *http.Request, pc proxyCall, mb messageBody, echoID string,
	ready func(id, fp, content string, files int) error) (io.Reader, string, *multipartSend, error) {
	if mb.boundary == "" {
		data, id := mb.withEcho(echoID)
		return bytesBody(data), mb.contentType, nil, ready(id, mb.fingerprint, mb.content, 0)
	}
	mp := startMultipart(http.MaxBytesReader(w, r.Body, s.opts.MaxMultipartBytes), mb.boundary, multipartEdit{
		read:   []string{"echo_id"},
		digest: []string{"content"},
		end: func(p multipartParts) ([]formField, error) {
			var add []formField
			id := p.fields["echo_id"]
			if id == "" {
				id = echoID
				if id == "" {
					id = newEchoID()
				}
				add = append(add, formField{"echo_id", id})
			}
			content := digest("")
			if d, ok := p.digests["content"]; ok {
				content = hex.EncodeToString(d)
			}
			fp := fingerprint(r.Method, pc.identity(), kindMultipart, p.fingerprint)
			return add, ready(id, fp, content, p.files)
		},
	})
	return mp, mp.contentType, mp, nil
}

// setResponse records Chatwoot's answer or the failure of the call. whole
// reports that the whole body went out: when it did not (a multipart upload
// cut off by the call's timeout or a reset), Chatwoot cannot have created
// the message.
func (res *sendResult) setResponse(resp *http.Response, err error, limit int64, whole bool) {
	if err != nil {
		res.err, res.mayHaveRun = err, whole && !notSent(err)
		if res.mayHaveRun {
			res.err = fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
		}
		return
	}
	res.resp = resp
	res.body, res.complete, err = readResponse(resp, limit)
	if err != nil {
		res.resp.Body.Close()
		res.resp, res.err, res.mayHaveRun = nil, fmt.Errorf("%w: %w", ErrOutcomeUnknown, err), whole
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

// stored is the answer a retry with the same key gets. A response larger
// than MaxResponseBytes is stored without its body.
func (res sendResult) stored(fp string) storedResponse {
	sr := storedResponse{Status: res.resp.StatusCode, ContentType: res.resp.Header.Get("Content-Type"),
		EchoID: res.echoID, Fingerprint: fp}
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
