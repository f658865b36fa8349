package api

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestAuth(t *testing.T) {
	withTokens := newServer(t, Options{APITokens: []string{"other-token", apiToken}})
	loopbackOnly := newServer(t, Options{})
	tests := []struct {
		name       string
		s          *Server
		path       string
		remote     string
		authHeader string
		want       int
	}{
		{"no token", withTokens, "/v1/subscriptions", "192.0.2.1:1234", "", 401},
		{"wrong token", withTokens, "/v1/subscriptions", "192.0.2.1:1234", "Bearer nope", 401},
		{"token prefix", withTokens, "/v1/subscriptions", "192.0.2.1:1234", "Bearer " + apiToken[:5], 401},
		{"basic scheme", withTokens, "/v1/subscriptions", "192.0.2.1:1234", "Basic " + apiToken, 401},
		{"empty bearer", withTokens, "/v1/subscriptions", "192.0.2.1:1234", "Bearer ", 401},
		{"right token", withTokens, "/v1/subscriptions", "192.0.2.1:1234", "Bearer " + apiToken, 200},
		{"second token, lowercase scheme", withTokens, "/v1/subscriptions", "192.0.2.1:1234", "bearer other-token", 200},
		{"loopback still needs a token", withTokens, "/v1/subscriptions", "127.0.0.1:5555", "", 401},
		{"proxy needs a token", withTokens, "/public/api/v1/inboxes/x", "192.0.2.1:1234", "", 401},
		{"healthz is open", withTokens, "/healthz", "192.0.2.1:1234", "", 200},
		{"readyz is open", withTokens, "/readyz", "192.0.2.1:1234", "", 200},
		{"openapi is open", withTokens, "/openapi.json", "192.0.2.1:1234", "", 200},
		{"loopback-only: ipv4 loopback", loopbackOnly, "/v1/subscriptions", "127.0.0.1:5555", "", 200},
		{"loopback-only: ipv6 loopback", loopbackOnly, "/v1/subscriptions", "[::1]:5555", "", 200},
		{"loopback-only: mapped loopback", loopbackOnly, "/v1/subscriptions", "[::ffff:127.0.0.1]:5555", "", 200},
		{"loopback-only: remote client", loopbackOnly, "/v1/subscriptions", "192.0.2.1:1234", "", 401},
		{"loopback-only: remote with a token", loopbackOnly, "/v1/subscriptions", "10.0.0.1:1234", "Bearer " + apiToken, 401},
		{"loopback-only: healthz is open", loopbackOnly, "/healthz", "192.0.2.1:1234", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request("GET", tt.path, "")
			req.RemoteAddr = tt.remote
			req.Host = "localhost:8080"
			req.Header.Del("Authorization")
			if tt.authHeader != "" {
				req.Header.Set("Authorization", tt.authHeader)
			}
			rec := serve(tt.s, req)
			if tt.want == 401 {
				wantError(t, rec, 401, CodeUnauthorized, apiToken)
				if rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				return
			}
			if rec.Code != tt.want {
				t.Errorf("status = %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
		})
	}
}

// TestLocalOnly: without tokens, a request is served only when it comes
// straight from this host, for this host, and not from another site's page.
func TestLocalOnly(t *testing.T) {
	up := &upstream{respond: respondJSON(200, `{"source_id":"s1","pubsub_token":"pt1"}`)}
	s, reg := newUpstreamServer(t, up, func(o *Options) { o.APITokens = nil })
	tests := []struct {
		name   string
		host   string
		header []string
		want   int
	}{
		{"plain loopback", "127.0.0.1:8080", nil, 200},
		{"localhost, no port", "localhost", nil, 200},
		{"localhost, upper case", "LOCALHOST:8080", nil, 200},
		{"other 127/8 address", "127.1.2.3:8080", nil, 200},
		{"ipv6 loopback", "[::1]:8080", nil, 200},
		{"ipv6 loopback, no port", "[::1]", nil, 200},
		{"same-origin page", "localhost:8080", []string{"Origin", "http://localhost:8080", "Sec-Fetch-Site", "same-origin"}, 200},
		{"page on another loopback port", "127.0.0.1:8080", []string{"Origin", "http://127.0.0.1:3000", "Sec-Fetch-Site", "same-site"}, 200},
		{"X-Forwarded-For", "127.0.0.1:8080", []string{"X-Forwarded-For", "203.0.113.9"}, 403},
		{"X-Forwarded-Host", "127.0.0.1:8080", []string{"X-Forwarded-Host", "relay.example"}, 403},
		{"X-Forwarded-Proto", "127.0.0.1:8080", []string{"X-Forwarded-Proto", "https"}, 403},
		{"Forwarded", "127.0.0.1:8080", []string{"Forwarded", "for=203.0.113.9"}, 403},
		{"X-Real-IP", "127.0.0.1:8080", []string{"X-Real-IP", "203.0.113.9"}, 403},
		{"Via", "127.0.0.1:8080", []string{"Via", "1.1 proxy"}, 403},
		{"forwarded for loopback", "127.0.0.1:8080", []string{"X-Forwarded-For", "127.0.0.1"}, 403},
		{"rebound host name", "attacker.example:8080", nil, 403},
		{"rebound host name, no port", "attacker.example", nil, 403},
		{"localhost with a dot", "localhost.:8080", nil, 403},
		{"subdomain of localhost", "evil.localhost:8080", nil, 403},
		{"loopback as a name", "127.0.0.1.nip.io", nil, 403},
		{"short loopback form", "127.1:8080", nil, 403},
		{"no host", "", nil, 403},
		{"cross-site origin", "127.0.0.1:8080", []string{"Origin", "https://attacker.example"}, 403},
		{"null origin", "127.0.0.1:8080", []string{"Origin", "null"}, 403},
		{"origin with a loopback-looking name", "127.0.0.1:8080", []string{"Origin", "http://localhost.attacker.example"}, 403},
		{"cross-site fetch metadata", "127.0.0.1:8080", []string{"Sec-Fetch-Site", "cross-site"}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, call := range [][2]string{{"GET", "/v1/subscriptions"}, {"POST", "/public/api/v1/inboxes/inbox-a/contacts"}} {
				method, target := call[0], call[1]
				req := request(method, target, "{}", tt.header...)
				req.Header.Del("Authorization")
				req.RemoteAddr, req.Host = "127.0.0.1:5555", tt.host
				before := len(up.requests())
				rec := serve(s, req)
				if tt.want == 403 {
					wantError(t, rec, 403, CodeForbidden, "attacker", "203.0.113.9")
					if len(up.requests()) != before {
						t.Errorf("%s: a refused request reached Chatwoot", target)
					}
					continue
				}
				if rec.Code != tt.want {
					t.Errorf("%s: status = %d, want %d: %s", target, rec.Code, tt.want, rec.Body)
				}
			}
		})
	}
	if n := len(reg.registrations()); n != 8 {
		t.Errorf("%d registrations, want one per served contact create (8)", n)
	}
	req := request("GET", "/healthz", "", "X-Forwarded-For", "203.0.113.9", "Origin", "https://attacker.example")
	req.Host = "attacker.example"
	if rec := serve(s, req); rec.Code != 200 {
		t.Errorf("healthz behind a proxy = %d, want 200 (health stays open)", rec.Code)
	}
}

func TestUnmatchedRoutes(t *testing.T) {
	s := newServer(t, Options{APITokens: []string{apiToken}})
	wantError(t, serve(s, request("GET", "/nope", "")), 404, CodeNotFound)
	wantError(t, serve(s, request("GET", "/", "")), 404, CodeNotFound)
	rec := serve(s, request("PUT", "/v1/subscriptions", ""))
	wantError(t, rec, 405, CodeInvalid)
	if allow := rec.Header().Get("Allow"); !strings.Contains(allow, "POST") || !strings.Contains(allow, "GET") {
		t.Errorf("Allow = %q", allow)
	}
	wantError(t, serve(s, request("OPTIONS", "/public/api/v1/inboxes/x", "")), 405, CodeInvalid)
}

func TestHealthReadyMetrics(t *testing.T) {
	prom := prometheus.NewRegistry()
	var notReady error
	s := newServer(t, Options{
		Registerer: prom, APITokens: []string{apiToken},
		Ready:   func() error { return notReady },
		Metrics: promhttp.HandlerFor(prom, promhttp.HandlerOpts{}),
	})
	if rec := serve(s, request("GET", "/healthz", "")); rec.Code != 200 {
		t.Errorf("healthz = %d", rec.Code)
	}
	if rec := serve(s, request("GET", "/readyz", "")); rec.Code != 200 {
		t.Errorf("readyz = %d", rec.Code)
	}
	notReady = errors.New("nats: connection to nats://user:pass@host refused")
	rec := serve(s, request("GET", "/readyz", ""))
	wantError(t, rec, 503, CodeUnavailable, "pass@host")

	serve(s, request("GET", "/v1/subscriptions", ""))
	serve(s, request("GET", "/nope", ""))
	rec = serve(s, request("GET", "/metrics", ""))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "relay_api_requests_total") {
		t.Fatalf("metrics: %d %s", rec.Code, rec.Body)
	}
	for _, tt := range []struct {
		route, method, code string
		want                float64
	}{
		{"/healthz", "GET", "2xx", 1},
		{"/readyz", "GET", "2xx", 1},
		{"/readyz", "GET", "5xx", 1},
		{"/v1/subscriptions", "GET", "2xx", 1},
		{"unmatched", "GET", "4xx", 1},
	} {
		got := testutil.ToFloat64(s.m.requests.WithLabelValues(tt.route, tt.method, tt.code))
		if got != tt.want {
			t.Errorf("requests{%s %s %s} = %v, want %v", tt.route, tt.method, tt.code, got, tt.want)
		}
	}

	noMetrics := newServer(t, Options{APITokens: []string{apiToken}})
	wantError(t, serve(noMetrics, request("GET", "/metrics", "")), 404, CodeNotFound)
}

func TestNewOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "Registry") || !strings.Contains(err.Error(), "Chatwoot") {
		t.Errorf("New without Registry and Chatwoot: %v", err)
	}
	_, err := New(Options{Registry: newFakeRegistry(), Chatwoot: newClient(t, "http://x", nil), MaxBodyBytes: -1})
	if err == nil {
		t.Error("negative MaxBodyBytes accepted")
	}
	prom := prometheus.NewRegistry()
	newServer(t, Options{Registerer: prom})
	if _, err := New(Options{Registry: newFakeRegistry(), Chatwoot: newClient(t, "http://x", nil), Registerer: prom}); err == nil {
		t.Error("second Server on one registry: no error")
	}
}

func TestDefaults(t *testing.T) {
	o, err := Options{Registry: newFakeRegistry(), Chatwoot: newClient(t, "http://x", nil)}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxBodyBytes != 1<<20 || o.EchoWait.Seconds() != 10 || o.IdempotencyTTL.Hours() != 24 ||
		o.RequestTimeout.Seconds() != 30 || o.Echoes == nil || o.Logger == nil {
		t.Errorf("defaults = %+v", o)
	}
}

func TestCheckPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"/", true},
		{"/public/api/v1/inboxes/abc/contacts", true},
		{"/public/api/v1/inboxes/a%20b", true},
		{"/public/api/v1/inboxes/../contacts", false},
		{"/public/api/v1/inboxes/./contacts", false},
		{"/public/api/v1/inboxes/%2e%2e/contacts", false},
		{"/public/api/v1/inboxes/%2E/contacts", false},
		{"/public/api/v1/inboxes/a%2Fb/contacts", false},
		{"/public/api/v1/inboxes/a%2fb", false},
		{"/public/api/v1/inboxes/a%5Cb", false},
		{"/public/api/v1//inboxes", false},
		{"/public/api/v1/inboxes/", true}, // Rails ignores a trailing slash
		{"/public/api/v1/inboxes//", false},
		{"//", false},
		{"/public/api/v1/inboxes/a%00b", false},
		{"/public/api/v1/inboxes/a%0ab", false},
		{"/public/api/v1/inboxes/a%zz", false},
	}
	for _, tt := range tests {
		err := checkPath(tt.path)
		if (err == nil) != tt.ok {
			t.Errorf("checkPath(%q) = %v, want ok=%v", tt.path, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("checkPath(%q) = %v, not ErrInvalid", tt.path, err)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{&http.MaxBytesError{Limit: 10}, 413, CodeInvalid},
		{ErrUnsupportedMediaType, 415, CodeInvalid},
		{ErrConflict, 409, CodeConflict},
		{errors.New("anything"), 500, CodeInternal},
	}
	for _, tt := range tests {
		status, code, msg := classify(tt.err)
		if status != tt.status || code != tt.code || msg == "" {
			t.Errorf("classify(%v) = %d %s %q, want %d %s", tt.err, status, code, msg, tt.status, tt.code)
		}
	}
	if _, _, msg := classify(errors.New("secret detail")); strings.Contains(msg, "secret") {
		t.Errorf("internal error message %q leaks the error", msg)
	}
}

// TestLockTTLBound: the idempotency lock must outlast what a live request
// may hold it: UploadReadTimeout + RequestTimeout (a keyed multipart send)
// and the time allowed to store the outcome. The default lock covers the
// default and a long upload bound.
func TestLockTTLBound(t *testing.T) {
	for _, upload := range []time.Duration{0, time.Hour} {
		o, err := Options{Registry: newFakeRegistry(), Chatwoot: newClient(t, "http://x", nil), UploadReadTimeout: upload}.withDefaults()
		if err != nil || o.IdempotencyLockTTL <= o.UploadReadTimeout+o.RequestTimeout+settleTimeout {
			t.Errorf("upload %v: default lock TTL %v, error %v", upload, o.IdempotencyLockTTL, err)
		}
	}
	base := Options{Registry: newFakeRegistry(), Chatwoot: newClient(t, "http://x", nil), IdempotencyLockTTL: 2 * time.Minute,
		UploadReadTimeout: time.Minute}
	for _, tt := range []struct {
		timeout time.Duration
		ok      bool
	}{{time.Minute, false}, {time.Minute - settleTimeout, false}, {time.Minute - settleTimeout - time.Second, true}} {
		o := base
		o.RequestTimeout = tt.timeout
		if _, err := o.withDefaults(); (err == nil) != tt.ok {
			t.Errorf("RequestTimeout %v with a 1m upload and a 2m lock: error %v, want ok %v", tt.timeout, err, tt.ok)
		}
	}
}
