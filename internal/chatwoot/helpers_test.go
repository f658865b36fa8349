package chatwoot

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/time/rate"
)

// Path values with characters that must be escaped; the expected escaped
// forms are written out by hand so that escaping bugs show.
const (
	testInbox       = "AbC/12 x"
	testInboxEsc    = "AbC%2F12%20x"
	testSourceID    = "s/1?x=y#z"
	testSourceIDEsc = "s%2F1%3Fx=y%23z"
	testUA          = "relay-test"
)

var testCI = ContactInbox{Inbox: testInbox, SourceID: testSourceID}

// seen is one request as the server received it.
type seen struct {
	Method string
	URI    string // raw request target
	Header http.Header
	Body   []byte
}

// recorder is an http.Handler that records requests and answers with the
// next scripted response (the last one repeats).
type recorder struct {
	mu    sync.Mutex
	reqs  []seen
	resps []resp
}

type resp struct {
	status int
	body   []byte
	header http.Header
}

func ok(body []byte) resp               { return resp{status: 200, body: body} }
func status(code int, body string) resp { return resp{status: code, body: []byte(body)} }

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, seen{r.Method, r.RequestURI, r.Header.Clone(), b})
	i := min(len(rec.reqs), len(rec.resps)) - 1
	var out resp
	if i >= 0 {
		out = rec.resps[i]
	}
	rec.mu.Unlock()
	for k, v := range out.header {
		w.Header()[k] = v
	}
	w.WriteHeader(out.status)
	w.Write(out.body)
}

func (rec *recorder) requests() []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]seen(nil), rec.reqs...)
}

// newServerClient starts an httptest server answering with resps and a
// client for it with no retries and no rate limit unless opts says so.
func newServerClient(t *testing.T, opts Options, resps ...resp) (*Client, *recorder, *prometheus.Registry) {
	t.Helper()
	rec := &recorder{resps: resps}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	opts.BaseURL = srv.URL
	c, reg := newTestClient(t, opts)
	return c, rec, reg
}

func newTestClient(t *testing.T, opts Options) (*Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	opts.UserAgent = orDefault(opts.UserAgent, testUA)
	opts.MaxAttempts = orDefault(opts.MaxAttempts, 1)
	if opts.Limiter == nil {
		opts.Limiter = rate.NewLimiter(rate.Inf, 1)
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

// fakeTransport answers from a script without any network, for tests that
// run inside a synctest bubble. Each call records the fake time and body.
type fakeTransport struct {
	mu     sync.Mutex
	script []func(*http.Request) (*http.Response, error)
	calls  []fakeCall
	// unread lists attempts (1-based) whose body is neither read nor
	// closed, like a server answering before reading the request.
	unread map[int]bool
}

type fakeCall struct {
	at   time.Time
	body []byte
}

func (f *fakeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	skip := f.unread[len(f.calls)+1]
	f.mu.Unlock()
	var b []byte
	if r.Body != nil && !skip {
		b, _ = io.ReadAll(r.Body)
		r.Body.Close()
	}
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{time.Now(), b})
	step := f.script[min(len(f.calls), len(f.script))-1]
	f.mu.Unlock()
	return step(r)
}

func (f *fakeTransport) attempts() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

func reply(code int, body string) func(*http.Request) (*http.Response, error) {
	return func(r *http.Request) (*http.Response, error) {
		return &http.Response{
			StatusCode: code, Status: http.StatusText(code), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)), Request: r,
		}, nil
	}
}

func fail(err error) func(*http.Request) (*http.Response, error) {
	return func(*http.Request) (*http.Response, error) { return nil, err }
}

// hang blocks until the request's context ends, like a server that never
// answers.
func hang(r *http.Request) (*http.Response, error) {
	<-r.Context().Done()
	return nil, r.Context().Err()
}

func newFakeClient(t *testing.T, opts Options, script ...func(*http.Request) (*http.Response, error)) (*Client, *fakeTransport, *prometheus.Registry) {
	t.Helper()
	ft := &fakeTransport{script: script}
	opts.BaseURL = "https://chatwoot.test"
	opts.HTTPClient = &http.Client{Transport: ft}
	c, reg := newTestClient(t, opts)
	return c, ft, reg
}

func counter(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}

func mustNotLeak(t *testing.T, what, s string) {
	t.Helper()
	for _, secret := range []string{testInbox, testInboxEsc, testSourceID, testSourceIDEsc} {
		if strings.Contains(s, secret) {
			t.Errorf("%s leaks %q: %s", what, secret, s)
		}
	}
}

func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	if want == "" {
		if len(got) != 0 {
			t.Errorf("body = %s, want none", got)
		}
		return
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("body = %s, want %s", got, want)
	}
}

var bg = context.Background()

func newHTTPServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
