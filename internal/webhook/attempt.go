package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// maxResponse bounds how much of a receiver's answer is read (and then
// discarded): enough to reuse the connection, never a memory risk.
const maxResponse = 64 << 10

// event is what one delivery sends: the body and routing headers as
// published, and the dedup key as webhook-id.
type event struct {
	id      string
	seq     uint64
	subject string
	body    []byte
	headers nats.Header
}

// newEvent reads a JetStream message. The webhook-id is the Nats-Msg-Id
// (the relay's dedup key); messages without one use "seq:<stream seq>".
func newEvent(m delivery) event {
	ev := event{subject: m.Subject(), body: m.Data(), headers: m.Headers()}
	if md, err := m.Metadata(); err == nil {
		ev.seq = md.Sequence.Stream
	}
	ev.id = ev.headers.Get(nats.MsgIdHdr)
	if ev.id == "" {
		ev.id = "seq:" + strconv.FormatUint(ev.seq, 10)
	}
	return ev
}

// result is the outcome of one HTTP attempt.
type result struct {
	status     int           // 0 when no answer
	err        string        // transport error, credential-free
	class      string        // 2xx..5xx, timeout, network, refused
	retryAfter time.Duration // from a Retry-After header
	latency    time.Duration
}

func (r result) ok() bool { return r.status >= 200 && r.status < 300 }

// errorText is the last error of a failed attempt, for dead letters.
func (r result) errorText() string {
	if r.err != "" {
		return r.err
	}
	return "HTTP " + strconv.Itoa(r.status)
}

// post makes one signed attempt of ev to ep.
func post(ctx context.Context, c *http.Client, ep *Endpoint, s *signer, ev event, timeout time.Duration) result {
	u, err := url.Parse(ep.URL)
	if err != nil {
		return result{err: "bad request", class: "network"}
	}
	return postTo(ctx, c, u, s, ev, timeout)
}

// postTo makes one signed attempt of ev to u. It goes straight to the
// client's transport: a delivery follows no redirect and keeps no
// cookie, so http.Client would only copy the headers for nothing.
func postTo(ctx context.Context, c *http.Client, u *url.URL, s *signer, ev event, timeout time.Duration) result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := newRequest(ctx, u, ev.body)
	setHeaders(req.Header, ev)
	start := time.Now()
	s.apply(req.Header, ev.id, start, ev.body)
	resp, err := c.Transport.RoundTrip(req)
	if err != nil {
		return failed(err, time.Since(start))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	_ = resp.Body.Close()
	return result{
		status:     resp.StatusCode,
		class:      strconv.Itoa(resp.StatusCode/100) + "xx",
		retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		latency:    time.Since(start),
	}
}

// newRequest is a POST of body to u (parsed once per endpoint).
func newRequest(ctx context.Context, u *url.URL, body []byte) *http.Request {
	if len(body) == 0 {
		body = nil
	}
	req := &http.Request{
		Method: http.MethodPost, URL: u, Host: u.Host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        make(http.Header, 16),
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		GetBody: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(body)), nil
		},
	}
	if body == nil {
		req.Body, req.GetBody = http.NoBody, nil
	}
	return req.WithContext(ctx)
}

// setHeaders copies the event's routing headers (Chatwoot-*, Relay-*)
// and sets the content type.
func setHeaders(h http.Header, ev event) {
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "chatwoot-relay-webhook")
	for k, v := range ev.headers {
		if strings.HasPrefix(k, "Chatwoot-") || strings.HasPrefix(k, "Relay-") {
			h[k] = v
		}
	}
}

// failed classifies a transport error without the URL (whose query may
// hold a receiver's credential).
func failed(err error, d time.Duration) result {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	switch {
	case errors.Is(err, ErrAddress):
		return result{err: err.Error(), class: "refused", latency: d}
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return result{err: "timeout", class: "timeout", latency: d}
	}
	return result{err: fmt.Sprintf("network: %v", err), class: "network", latency: d}
}
