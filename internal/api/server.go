package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/relayhq/relay/internal/chatwoot"
)

// Server is the relay's HTTP API. Create it with New and serve Handler.
type Server struct {
	opts    Options
	auth    auth
	log     *slog.Logger
	m       *metrics
	mux     *http.ServeMux
	handler http.Handler
	// inflight bounds the requests served at once (MaxConcurrent).
	inflight limiter
	// registrations groups concurrent POST /v1/subscriptions.
	registrations *registerGroup
}

// New returns a Server; it reports every invalid option at once.
func New(opts Options) (*Server, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	a, err := newAuth(o.APITokens, o.Tokens)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: o, auth: a, log: o.Logger.With("component", "api"), m: m,
		inflight: make(limiter, o.MaxConcurrent)}
	s.registrations = newRegisterGroup(o.Registry, o.RequestTimeout, s.log)
	s.mux = http.NewServeMux()
	for _, rt := range s.routes() {
		s.mux.Handle(rt.pattern, s.wrap(rt))
	}
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// Handler returns the API's handler: every route, health and metrics.
func (s *Server) Handler() http.Handler { return s.handler }

// Echoes returns the tracker that ?wait=echo waits on; the live event
// stream must call its Observe or ObserveEvent for message.created events.
func (s *Server) Echoes() *EchoTracker { return s.opts.Echoes }

// route is one entry of the router.
type route struct {
	pattern string // ServeMux pattern "METHOD /path"
	open    bool   // served without a bearer token
	handle  http.HandlerFunc
}

// proxyMethods are the methods forwarded to Chatwoot's public API (GET also
// serves HEAD).
var proxyMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// proxyPattern is the router path of the public-API proxy.
const proxyPattern = chatwoot.APIPrefix + "/{path...}"

// routes is the router's table; the OpenAPI document is tested against it.
func (s *Server) routes() []route {
	rts := []route{
		{"GET /healthz", true, s.healthz},
		{"GET /readyz", true, s.readyz},
		{"GET /metrics", true, s.metrics},
		{"GET /openapi.json", true, s.openAPI},
		{"POST /v1/subscriptions", false, s.createSubscription},
		{"POST /v1/subscriptions/batch", false, s.createSubscriptions},
		{"GET /v1/subscriptions", false, s.listSubscriptions},
		{"GET /v1/subscriptions/{id}", false, s.getSubscription},
		{"DELETE /v1/subscriptions/{id}", false, s.deleteSubscription},
		{"POST /v1/webhooks", false, s.createWebhook},
		{"GET /v1/webhooks", false, s.listWebhooks},
		{"GET /v1/webhooks/{id}", false, s.getWebhook},
		{"PATCH /v1/webhooks/{id}", false, s.patchWebhook},
		{"DELETE /v1/webhooks/{id}", false, s.deleteWebhook},
		{"POST /v1/webhooks/{id}/test", false, s.testWebhook},
		{"POST /v1/webhooks/{id}/replay", false, s.replayWebhook},
		{"GET /v1/webhooks/{id}/deliveries", false, s.webhookDeliveries},
		{"POST /v1/feeds", false, s.createFeed},
		{"GET /v1/feeds", false, s.listFeeds},
		{"GET /v1/feeds/{id}", false, s.getFeed},
		{"DELETE /v1/feeds/{id}", false, s.deleteFeed},
		{"GET /v1/cluster", false, s.getCluster},
	}
	for _, m := range proxyMethods {
		rts = append(rts, route{m + " " + proxyPattern, false, s.proxy})
	}
	return rts
}

// wrap labels a route's requests with its template and checks the token
// and its scope (routeScope).
func (s *Server) wrap(rt route) http.Handler {
	_, label, _ := strings.Cut(rt.pattern, " ")
	scope := routeScope(rt.pattern)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setRouteLabel(r, label)
		if !rt.open {
			if err := s.auth.check(r, scope); err != nil {
				if errors.Is(err, ErrUnauthorized) {
					w.Header().Set("WWW-Authenticate", `Bearer realm="relay"`)
				}
				Error(w, r, err)
				return
			}
		}
		rt.handle(w, r)
	})
}

// serveHTTP checks the path, admits the request within the concurrency
// bound, sets its body read deadline, routes, and records every request.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	info := &requestInfo{route: "unmatched"}
	r = r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info))
	defer s.finish(rec, r, info, start)
	if err := checkPath(r.URL.EscapedPath()); err != nil {
		Error(rec, r, err)
		return
	}
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		s.unmatched(rec, r)
		return
	}
	release, ok := s.admit(rec, r, pattern)
	if !ok {
		return
	}
	defer release()
	s.limitBodyRead(rec, r)
	s.mux.ServeHTTP(rec, r)
}

// finish records the request and turns a handler panic into a 500.
func (s *Server) finish(rec *recorder, r *http.Request, info *requestInfo, start time.Time) {
	if p := recover(); p != nil {
		if p == http.ErrAbortHandler {
			panic(p)
		}
		s.log.ErrorContext(r.Context(), "api handler panic", "route", info.route, "panic", fmt.Sprint(p))
		if rec.status == 0 {
			Error(rec, r, errors.New("panic"))
		}
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	elapsed := time.Since(start)
	s.m.requests.WithLabelValues(info.route, methodLabel(r.Method), codeClass(status)).Inc()
	s.m.duration.WithLabelValues(info.route).Observe(elapsed.Seconds())
	s.log.DebugContext(r.Context(), "api request", "method", methodLabel(r.Method), "route", info.route,
		"status", status, "duration", elapsed)
}

// unmatched answers a request no route takes: 404, or 405 with Allow when
// the path exists with other methods.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	probe := &statusProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		Error(w, r, fmt.Errorf("%w: %s", ErrMethodNotAllowed, methodLabel(r.Method)))
		return
	}
	Error(w, r, fmt.Errorf("%w: no such route", ErrNotFound))
}

// checkPath refuses paths that a proxy or a router could read differently
// from Chatwoot: empty or dot segments (also percent-encoded), encoded
// slashes and backslashes, control characters and bad escapes. One trailing
// slash is allowed: Rails ignores it.
func checkPath(escaped string) error {
	rest := strings.TrimPrefix(escaped, "/")
	if rest == "" {
		return nil
	}
	if !strings.HasPrefix(escaped, "/") {
		return fmt.Errorf("%w: path must start with /", ErrInvalid)
	}
	rest = strings.TrimSuffix(rest, "/")
	if rest == "" {
		return fmt.Errorf("%w: empty path segment", ErrInvalid)
	}
	for seg := range strings.SplitSeq(rest, "/") {
		if err := checkSegment(seg); err != nil {
			return err
		}
	}
	return nil
}

func checkSegment(seg string) error {
	if seg == "" {
		return fmt.Errorf("%w: empty path segment", ErrInvalid)
	}
	lower := strings.ToLower(seg)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") {
		return fmt.Errorf("%w: encoded slash in path", ErrInvalid)
	}
	v, err := url.PathUnescape(seg)
	if err != nil {
		return fmt.Errorf("%w: malformed escape in path", ErrInvalid)
	}
	if v == "." || v == ".." {
		return fmt.Errorf("%w: dot segment in path", ErrInvalid)
	}
	for _, c := range []byte(v) {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("%w: control character or backslash in path", ErrInvalid)
		}
	}
	return nil
}

// withTimeout bounds a handler's work.
func (s *Server) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.RequestTimeout)
}

// withSendTimeout bounds a handler that sends a body to Chatwoot: a
// streamed (multipart) body goes out as the client uploads it, so its
// request gets UploadReadTimeout (the body's read deadline) on top of
// RequestTimeout.
func (s *Server) withSendTimeout(ctx context.Context, streamed bool) (context.Context, context.CancelFunc) {
	if !streamed {
		return s.withTimeout(ctx)
	}
	return context.WithTimeout(ctx, s.maxRequestTimeout())
}

// maxRequestTimeout is the longest a request may run: a streamed upload.
func (s *Server) maxRequestTimeout() time.Duration { return s.opts.maxRequestTimeout() }

// isStreamed reports whether a body to forward is streamed as it arrives.
func isStreamed(body io.Reader) bool {
	switch body.(type) {
	case *clientReader, *multipartSend:
		return true
	}
	return false
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.opts.Ready != nil {
		if err := s.opts.Ready(); err != nil {
			s.log.WarnContext(r.Context(), "not ready", "error", err)
			Error(w, r, fmt.Errorf("%w: not ready", ErrUnavailable))
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.opts.Metrics == nil {
		Error(w, r, fmt.Errorf("%w: metrics are not enabled", ErrNotFound))
		return
	}
	s.opts.Metrics.ServeHTTP(w, r)
}

// fail writes err and logs the failures that are the relay's own.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, _, _ := classify(err)
	if status == http.StatusInternalServerError || status == http.StatusServiceUnavailable {
		s.log.ErrorContext(r.Context(), "api request failed", "route", routeLabel(r), "status", status, "error", err)
	}
	Error(w, r, err)
}

// requestInfo is shared between serveHTTP and the handlers through the
// request's context.
type requestInfo struct {
	route string // metric label: route template
}

type requestInfoKey struct{}

func setRouteLabel(r *http.Request, label string) {
	if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		info.route = label
	}
}

func routeLabel(r *http.Request) string {
	if info, ok := r.Context().Value(requestInfoKey{}).(*requestInfo); ok {
		return info.route
	}
	return "unmatched"
}

// recorder remembers the status written.
type recorder struct {
	http.ResponseWriter
	status int
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// Flush passes flushes through for streamed proxy responses.
func (rec *recorder) Flush() {
	if f, ok := rec.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// statusProbe captures what the router's own 404/405 handlers would write.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(code int)        { p.status = code }
