package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/relayhq/relay/internal/chatwoot"
)

// What the relay does on top of forwarding, by route.
type proxyKind int

const (
	proxyPlain proxyKind = iota
	proxyContactCreate
	proxyContactShow
	proxyContactUpdate
	proxyMessageCreate
)

// Query parameters the relay reads and never forwards.
const (
	paramSubscribe = "subscribe"
	paramWait      = "wait"
)

// Response headers the relay adds.
const (
	headerSubscription      = "Relay-Subscription"
	headerSubscriptionError = "Relay-Subscription-Error"
	headerEchoID            = "Relay-Echo-Id"
	headerEcho              = "Relay-Echo"
	headerIdempotencyKey    = "Idempotency-Key"
	headerReplay            = "Idempotent-Replay"
)

// forwardedRequestHeaders are the client headers sent on to Chatwoot; the
// relay's Authorization, cookies and hop-by-hop headers never are.
var forwardedRequestHeaders = []string{"Accept", "Accept-Language", "Content-Type", "If-None-Match", "If-Modified-Since"}

// returnedResponseHeaders are Chatwoot's headers passed back to the client.
var returnedResponseHeaders = []string{
	"Content-Type", "Content-Language", "Content-Disposition", "Cache-Control",
	"ETag", "Last-Modified", "Retry-After", "Vary", "X-Request-Id",
}

// proxyCall is one proxied request, parsed.
type proxyCall struct {
	kind      proxyKind
	tmpl      string // Chatwoot route template, for labels and logs
	inbox     string // unescaped {inbox}, "" when the route has none
	sourceID  string // unescaped {source_id}, "" when the route has none
	path      string // escaped path below chatwoot.APIPrefix, as forwarded
	route     string // unescaped path of the route: no ".json", no trailing slash
	query     string // raw query to forward (relay parameters removed)
	subscribe bool   // register the token of a contact create/show
	waitEcho  bool   // ?wait=echo on message create
}

// target is what Client.Do takes.
func (pc proxyCall) target() string {
	if pc.query == "" {
		return pc.path
	}
	return pc.path + "?" + pc.query
}

// identity is the route and its forwarded query, pairs unescaped and sorted
// by name (the values of a name keep their order: Rails keeps the last),
// for Idempotency-Key fingerprints: Rails merges query parameters into the
// create's params.
func (pc proxyCall) identity() string {
	if pc.query == "" {
		return pc.route
	}
	var pairs [][2]string
	for pair := range strings.SplitSeq(pc.query, "&") {
		k, v, _ := strings.Cut(pair, "=")
		pairs = append(pairs, [2]string{unescapeQuery(k), unescapeQuery(v)})
	}
	slices.SortStableFunc(pairs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	var b strings.Builder
	b.WriteString(pc.route + "?")
	for _, p := range pairs {
		b.WriteString(url.QueryEscape(p[0]) + "=" + url.QueryEscape(p[1]) + "&")
	}
	return b.String()
}

// unescapeQuery unescapes a query name or value; a malformed one is kept
// as sent.
func unescapeQuery(s string) string {
	if v, err := url.QueryUnescape(s); err == nil {
		return v
	}
	return s
}

// proxy forwards /public/api/v1/... to Chatwoot's public API.
func (s *Server) proxy(w http.ResponseWriter, r *http.Request) {
	pc, err := newProxyCall(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	setRouteLabel(r, chatwoot.APIPrefix+pc.tmpl)
	if pc.kind != proxyMessageCreate && len(r.Header.Values(headerIdempotencyKey)) > 0 {
		s.fail(w, r, errKeyNotApplicable)
		return
	}
	switch pc.kind {
	case proxyContactCreate, proxyContactShow, proxyContactUpdate:
		s.proxyContact(w, r, pc)
	case proxyMessageCreate:
		s.proxyMessageCreate(w, r, pc)
	default:
		s.proxyPlain(w, r, pc)
	}
}

// errKeyNotApplicable refuses an Idempotency-Key the relay would not
// honour, rather than forwarding the request unprotected (e.g. POST
// .../messages.xml, which Rails may route to the message create).
var errKeyNotApplicable = fmt.Errorf("%w: Idempotency-Key applies to message create only "+
	"(POST .../conversations/{id}/messages, optionally .json)", ErrInvalid)

func newProxyCall(r *http.Request) (proxyCall, error) {
	path := strings.TrimPrefix(r.URL.EscapedPath(), chatwoot.APIPrefix)
	path = strings.TrimSuffix(path, "/") // Rails ignores a trailing slash
	if path == "" {
		return proxyCall{}, fmt.Errorf("%w: empty path below %s", ErrInvalid, chatwoot.APIPrefix)
	}
	pc := matchProxy(r.Method, path)
	query, relay := splitQuery(r.URL.RawQuery)
	pc.query = query
	if err := pc.relayParams(relay); err != nil {
		return proxyCall{}, err
	}
	return pc, nil
}

// relayParams applies ?subscribe= and ?wait=.
func (pc *proxyCall) relayParams(relay url.Values) error {
	switch v := lastValue(relay, paramSubscribe); v {
	case "", "true", "1":
		pc.subscribe = true
	case "false", "0":
	default:
		return fmt.Errorf("%w: subscribe must be true or false", ErrInvalid)
	}
	switch v := lastValue(relay, paramWait); {
	case v == "":
	case v == "echo" && pc.kind == proxyMessageCreate:
		pc.waitEcho = true
	case v == "echo":
		return fmt.Errorf("%w: wait=echo applies to message create only", ErrInvalid)
	default:
		return fmt.Errorf("%w: wait must be echo", ErrInvalid)
	}
	return nil
}

// splitQuery removes the relay's parameters from a raw query, keeping every
// other pair exactly as sent.
func splitQuery(raw string) (forward string, relay url.Values) {
	relay = url.Values{}
	var kept []string
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err == nil && (key == paramSubscribe || key == paramWait) {
			val, _ := url.QueryUnescape(v)
			relay.Add(key, val)
			continue
		}
		kept = append(kept, pair)
	}
	return strings.Join(kept, "&"), relay
}

// proxyTemplates are the public API's routes, most specific last does not
// matter: templates of different lengths never match the same path.
var proxyTemplates = []string{
	chatwoot.RouteInbox, chatwoot.RouteContacts, chatwoot.RouteContact,
	chatwoot.RouteConversations, chatwoot.RouteConversation, chatwoot.RouteToggleStatus,
	chatwoot.RouteToggleTyping, chatwoot.RouteUpdateLastSeen, chatwoot.RouteMessages,
	chatwoot.RouteMessage, chatwoot.RouteCSATSurvey,
}

// formatSuffix is the format extension Rails routes accept on every route
// ("(.:format)"); Chatwoot answers JSON with or without it.
const formatSuffix = ".json"

// matchProxy finds the template of an escaped path below the API prefix
// (without its trailing slash). A ".json" suffix is the same route: it is
// left out of matching and of pc.route, and forwarded as sent.
func matchProxy(method, path string) proxyCall {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	last := len(segs) - 1
	segs[last] = strings.TrimSuffix(segs[last], formatSuffix)
	pc := proxyCall{tmpl: "/" + chatwoot.RouteOther, path: path, route: unescapedRoute(segs)}
	for _, tmpl := range proxyTemplates {
		if vals, ok := matchTemplate(tmpl, segs); ok {
			pc.tmpl, pc.inbox, pc.sourceID = tmpl, vals["{inbox}"], vals["{source_id}"]
			pc.kind = kindOf(method, tmpl)
			return pc
		}
	}
	return pc
}

// unescapedRoute joins unescaped segments, so that "12%2D" and "12-" name
// the same route (checkPath already refused encoded slashes).
func unescapedRoute(segs []string) string {
	var b strings.Builder
	for _, seg := range segs {
		v, err := url.PathUnescape(seg)
		if err != nil {
			v = seg
		}
		b.WriteString("/" + v)
	}
	return b.String()
}

func matchTemplate(tmpl string, segs []string) (map[string]string, bool) {
	tsegs := strings.Split(strings.TrimPrefix(tmpl, "/"), "/")
	if len(tsegs) != len(segs) {
		return nil, false
	}
	vals := map[string]string{}
	for i, ts := range tsegs {
		if !strings.HasPrefix(ts, "{") {
			if ts != segs[i] {
				return nil, false
			}
			continue
		}
		v, err := url.PathUnescape(segs[i])
		if err != nil {
			return nil, false
		}
		vals[ts] = v
	}
	return vals, true
}

func kindOf(method, tmpl string) proxyKind {
	switch {
	case tmpl == chatwoot.RouteContacts && method == http.MethodPost:
		return proxyContactCreate
	case tmpl == chatwoot.RouteContact && method == http.MethodGet:
		return proxyContactShow
	case tmpl == chatwoot.RouteContact && (method == http.MethodPatch || method == http.MethodPut):
		return proxyContactUpdate
	case tmpl == chatwoot.RouteMessages && method == http.MethodPost:
		return proxyMessageCreate
	}
	return proxyPlain
}

// proxyPlain forwards a request and streams Chatwoot's answer back as is.
func (s *Server) proxyPlain(w http.ResponseWriter, r *http.Request, pc proxyCall) {
	body, ct, err := s.forwardBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx, cancel := s.withSendTimeout(r.Context(), isStreamed(body))
	defer cancel()
	s.forward(ctx, w, r, pc, body, ct)
}

// send calls Chatwoot. A streamed body that failed on the client's side
// (too large, cut off) is the client's error, whatever Chatwoot did.
func (s *Server) send(ctx context.Context, r *http.Request, pc proxyCall, body io.Reader, ct string) (*http.Response, error) {
	resp, err := s.opts.Chatwoot.Do(ctx, r.Method, pc.target(), body, forwardHeader(r, ct))
	cerr := clientReadError(body)
	if mp, ok := body.(*multipartSend); ok {
		cerr = mp.finish(resp != nil)
	}
	if cerr != nil {
		discardResponse(resp)
		return nil, cerr
	}
	return resp, err
}

// forward sends the request and streams the response back.
func (s *Server) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, pc proxyCall, body io.Reader, ct string) {
	resp, err := s.send(ctx, r, pc, body, ct)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer resp.Body.Close()
	copyResponseHeader(w, resp)
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		s.log.DebugContext(ctx, "proxied response copy failed", "route", pc.tmpl, "error", err)
	}
}

// forwardBody prepares a body to forward unchanged: nil without one, read in
// full (so that Chatwoot's 429 can be retried) unless it is multipart, which
// is streamed within its own limit.
func (s *Server) forwardBody(w http.ResponseWriter, r *http.Request) (io.Reader, string, error) {
	kind, _ := bodyKind(r)
	ct := r.Header.Get("Content-Type")
	switch kind {
	case kindNone:
		return nil, "", nil
	case kindMultipart:
		if r.ContentLength > s.opts.MaxMultipartBytes {
			return nil, "", &http.MaxBytesError{Limit: s.opts.MaxMultipartBytes}
		}
		return &clientReader{r: http.MaxBytesReader(w, r.Body, s.opts.MaxMultipartBytes)}, ct, nil
	}
	b, err := readBody(w, r, s.opts.MaxBodyBytes)
	if err != nil {
		return nil, "", err
	}
	return bytesBody(b), ct, nil
}

// forwardHeader selects the client headers Chatwoot gets; ct, when not
// empty, is the Content-Type of the body actually sent.
func forwardHeader(r *http.Request, ct string) http.Header {
	h := http.Header{}
	for _, k := range forwardedRequestHeaders {
		if vs := r.Header.Values(k); len(vs) > 0 {
			h[k] = append([]string(nil), vs...)
		}
	}
	h.Del("Content-Type")
	if ct != "" {
		h.Set("Content-Type", ct)
	}
	return h
}

func copyResponseHeader(w http.ResponseWriter, resp *http.Response) {
	for _, k := range returnedResponseHeaders {
		if vs := resp.Header.Values(k); len(vs) > 0 {
			w.Header()[k] = append([]string(nil), vs...)
		}
	}
}

func discardResponse(resp *http.Response) {
	if resp != nil {
		resp.Body.Close()
	}
}

// clientReader records the first failure reading the client's body while
// the Chatwoot client streams it, so that a body that was too large or cut
// off is reported as the client's error, not as Chatwoot's.
type clientReader struct {
	r io.Reader

	mu  sync.Mutex
	err error
}

func (c *clientReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// clientReadError returns the client-side failure of a streamed body.
func clientReadError(body io.Reader) error {
	c, ok := body.(*clientReader)
	if !ok {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.err == nil:
		return nil
	case isMaxBytes(c.err):
		return c.err
	}
	return bodyReadError(c.err)
}

// readResponse reads a Chatwoot response body of at most limit bytes.
// complete is false when the body is longer: b then holds its first limit
// bytes and the rest is still in resp.Body.
func readResponse(resp *http.Response, limit int64) (b []byte, complete bool, err error) {
	b, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, false, errors.Join(errUpstreamBody, err)
	}
	if int64(len(b)) > limit {
		return b, false, nil
	}
	return b, true, nil
}

// writeResponse writes a Chatwoot response whose body was (partly) read.
func writeResponse(w http.ResponseWriter, resp *http.Response, b []byte, complete bool) {
	copyResponseHeader(w, resp)
	w.WriteHeader(resp.StatusCode)
	w.Write(b)
	if !complete {
		io.Copy(w, resp.Body)
	}
}
