package chatwoot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

const maxRedirects = 5

// Client calls Chatwoot's public client API. It is safe for concurrent use.
type Client struct {
	root    string // escaped scheme://host[/prefix]/public/api/v1
	origin  string // escaped scheme://host[/prefix]: the Application API's root
	scheme  string
	host    string
	hc      *http.Client
	ua      string
	timeout time.Duration
	lim     *rate.Limiter
	shared  interface {
		Wait(ctx context.Context) error
	} // nil: this process alone
	log     *slog.Logger
	m       *metrics
	retry   retryPolicy
	maxBody int64
}

// New returns a Client for opts.BaseURL; it reports every invalid option at
// once.
func New(opts Options) (*Client, error) {
	o, err := opts.withDefaults()
	base, berr := parseBaseURL(opts.BaseURL)
	if err := errors.Join(err, berr); err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	c := &Client{
		origin:  base.Scheme + "://" + base.Host + strings.TrimSuffix(base.EscapedPath(), "/"),
		scheme:  base.Scheme,
		host:    base.Host,
		ua:      o.UserAgent,
		timeout: o.Timeout,
		lim:     o.Limiter,
		shared:  o.SharedLimiter,
		log:     o.Logger,
		m:       m,
		retry:   retryPolicy{maxAttempts: o.MaxAttempts, base: o.RetryBaseDelay, max: o.RetryMaxDelay},
		maxBody: o.MaxResponseBytes,
	}
	c.root = c.origin + APIPrefix
	c.hc = c.httpClient(o.HTTPClient)
	return c, nil
}

// Limiter returns the limiter every request of c waits on, for sharing with
// other clients of the same Chatwoot.
func (c *Client) Limiter() *rate.Limiter { return c.lim }

func (c *Client) httpClient(given *http.Client) *http.Client {
	hc := http.Client{Transport: newTransport()}
	if given != nil {
		hc = *given
	}
	hc.CheckRedirect = c.checkRedirect
	return &hc
}

// checkRedirect follows redirects only within BaseURL's scheme and host.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != c.scheme || req.URL.Host != c.host {
		return fmt.Errorf("%w: Location points to another scheme or host", ErrRedirect)
	}
	if len(via) >= maxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrRedirect, maxRedirects)
	}
	return nil
}

// Do sends a request to any public API path, through the same limiter,
// timeout, retry policy and metrics as the typed calls. path is relative to
// APIPrefix ("/inboxes/abc/contacts?x=1"), already escaped; it must not
// leave the public API. The response is returned whatever its status: only
// transport failures (*APIError with Kind unreachable, timeout, canceled or
// redirect) and invalid arguments are errors. The per-attempt timeout keeps
// running until the response body is closed.
//
// body is replayed on retries when it is a *bytes.Buffer or an io.Seeker;
// other readers are sent once (a 429 is then returned, not retried). Like
// http.Client, Do closes body if it is an io.Closer.
func (c *Client) Do(ctx context.Context, method, path string, body io.Reader, header http.Header) (*http.Response, error) {
	rt, err := proxyRoute(method, path)
	if err != nil {
		closeBody(body)
		return nil, err
	}
	b, err := readerBody(body)
	if err != nil {
		closeBody(body)
		return nil, err
	}
	return c.send(ctx, &request{rt: rt, header: header, body: b})
}

func closeBody(body io.Reader) {
	if cl, ok := body.(io.Closer); ok {
		cl.Close()
	}
}

// request is one logical call, sent in one or more attempts.
type request struct {
	rt     route
	header http.Header
	body   *body // nil: no body
}

// send runs the attempts of r and returns the last response, whatever its
// status, or a transport *APIError.
func (c *Client) send(ctx context.Context, r *request) (*http.Response, error) {
	defer r.body.done()
	for attempt := 1; ; attempt++ {
		resp, err := c.attempt(ctx, r)
		reason := c.retryable(r, resp, err, attempt)
		delay := c.retry.backoff(attempt)
		if reason == "" || !fitsDeadline(ctx, delay) {
			return c.finish(resp, err)
		}
		discard(resp)
		c.m.retries.WithLabelValues(string(reason)).Inc()
		c.log.DebugContext(ctx, "chatwoot request retry", "route", r.rt.name(),
			"attempt", attempt, "reason", reason, "delay", delay)
		if err := sleep(ctx, delay); err != nil {
			return c.finish(nil, waitError(r.rt, err, ctx))
		}
	}
}

func (c *Client) retryable(r *request, resp *http.Response, err error, attempt int) Kind {
	if attempt >= c.retry.maxAttempts || (r.body != nil && !r.body.replayable) {
		return ""
	}
	return retryReason(r.rt.method, resp, err)
}

// finish counts the outcome of a call that is not retried any more.
func (c *Client) finish(resp *http.Response, err error) (*http.Response, error) {
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			c.m.errors.WithLabelValues(string(ae.Kind)).Inc()
		}
		return nil, err
	}
	if resp.StatusCode >= 300 {
		c.m.errors.WithLabelValues(string(statusKind(resp.StatusCode))).Inc()
	}
	return resp, nil
}

// attempt waits for the limiter and sends r once under the per-attempt
// timeout (see attemptClock), which ends when the returned response's body
// is closed.
func (c *Client) attempt(ctx context.Context, r *request) (*http.Response, error) {
	if err := c.wait(ctx, r.rt); err != nil {
		return nil, err
	}
	clk := c.newClock(ctx, r)
	req, err := c.newHTTPRequest(clk.ctx, r)
	if err != nil {
		clk.end()
		return nil, err
	}
	clk.watch(req)
	start := time.Now()
	resp, err := c.hc.Do(req)
	elapsed := time.Since(start)
	clk.start() // an answer may come before the end of the body: the timeout covers reading it
	if err != nil {
		clk.end()
		ae := transportError(r.rt, clk.cause(err), ctx)
		c.observe(r.rt, 0, elapsed)
		c.log.DebugContext(ctx, "chatwoot request failed", "route", r.rt.name(), "kind", ae.Kind, "error", ae)
		return nil, ae
	}
	c.observe(r.rt, resp.StatusCode, elapsed)
	c.log.DebugContext(ctx, "chatwoot request", "route", r.rt.name(), "status", resp.StatusCode, "duration", elapsed)
	resp.Body = &cancelBody{ReadCloser: resp.Body, clk: clk}
	return resp, nil
}

func (c *Client) wait(ctx context.Context, rt route) error {
	start := time.Now()
	err := c.lim.Wait(ctx)
	if err == nil && c.shared != nil {
		err = c.shared.Wait(ctx)
	}
	c.m.limiterWait.Observe(time.Since(start).Seconds())
	if err != nil {
		return waitError(rt, err, ctx)
	}
	return nil
}

func (c *Client) observe(rt route, status int, elapsed time.Duration) {
	method := methodLabel(rt.method)
	c.m.requests.WithLabelValues(rt.tmpl, method, codeClass(status)).Inc()
	c.m.duration.WithLabelValues(rt.tmpl, method).Observe(elapsed.Seconds())
}

// newHTTPRequest builds one attempt's request. Its errors never quote the
// URL: the path holds secrets.
func (c *Client) newHTTPRequest(ctx context.Context, r *request) (*http.Request, error) {
	target := c.root + r.rt.path
	if r.rt.app {
		target = c.origin + r.rt.path
	}
	if r.rt.query != "" {
		target += "?" + r.rt.query
	}
	req, err := http.NewRequestWithContext(ctx, r.rt.method, target, nil)
	if err != nil || req.URL.Scheme != c.scheme || req.URL.Host != c.host {
		return nil, fmt.Errorf("%w: cannot build a request for %s", ErrArgument, r.rt.name())
	}
	if r.header != nil {
		req.Header = r.header.Clone()
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", c.ua)
	}
	if r.body == nil {
		return req, nil
	}
	rc, err := r.body.open()
	if err != nil {
		return nil, err
	}
	req.Body, req.ContentLength = rc, r.body.length
	if r.body.length == 0 {
		rc.Close()
		req.Body = http.NoBody // a non-nil Body with length 0 would be sent chunked
	}
	if r.body.replayable {
		req.GetBody = r.body.open // lets the transport resend on a dead keep-alive connection
	}
	return req, nil
}

// cancelBody ends the attempt's context when the caller closes the body; a
// read cut off by the attempt's timeout fails with context.DeadlineExceeded.
type cancelBody struct {
	io.ReadCloser
	clk *attemptClock
}

func (b *cancelBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = b.clk.cause(err)
	}
	return n, err
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.clk.end()
	return err
}

// discard drains a little of a response that will not be used, so its
// connection can be reused, and closes it.
func discard(resp *http.Response) {
	if resp == nil {
		return
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, MaxErrorBody))
	resp.Body.Close()
}
