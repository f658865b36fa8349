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
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(ev.body))
	if err != nil {
		return result{err: "bad request", class: "network"}
	}
	setHeaders(req.Header, ev)
	start := time.Now()
	s.apply(req.Header, ev.id, start, ev.body)
	resp, err := c.Do(req)
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
