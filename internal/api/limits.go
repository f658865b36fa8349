package api

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/relayhq/relay/internal/chatwoot"
)

// Listener-level protections: a bound on the requests in flight, and read
// deadlines on request bodies sized for what the route can carry.

// errOverloaded refuses a request past Options.MaxConcurrent.
var errOverloaded = fmt.Errorf("%w: too many requests in flight, retry later", ErrUnavailable)

// overloadRetryAfter is the Retry-After (seconds) of an errOverloaded.
const overloadRetryAfter = "1"

// limiter bounds the requests in flight; a request past the bound is
// refused at once rather than queued.
type limiter chan struct{}

func (l limiter) tryAcquire() bool {
	select {
	case l <- struct{}{}:
		return true
	default:
		return false
	}
}

func (l limiter) release() { <-l }

// unlimited reports the paths served outside the bound: probes and scrapes
// must answer when the API is saturated.
func unlimited(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	return false
}

// admit takes a slot for a request to pattern, or answers 503 with
// Retry-After and reports false. The caller calls release when admitted.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, pattern string) (release func(), ok bool) {
	if unlimited(r.URL.Path) {
		return func() {}, true
	}
	if !s.inflight.tryAcquire() {
		_, label, _ := strings.Cut(pattern, " ")
		setRouteLabel(r, label)
		s.m.overloaded.Inc()
		w.Header().Set("Retry-After", overloadRetryAfter)
		Error(w, r, errOverloaded)
		return nil, false
	}
	s.m.inflight.Inc()
	return func() {
		s.m.inflight.Dec()
		s.inflight.release()
	}, true
}

// limitBodyRead sets the read deadline of a request body: UploadReadTimeout
// for a multipart body on the proxied public API (an attachment), the short
// BodyReadTimeout for any other, so that a client trickling a JSON body
// cannot hold a connection and a slot for the upload bound. net/http lifts
// the deadline once the body has been read to its end (its background read
// that watches for the client going away runs without one), so a request
// may outlive it (a slow Chatwoot, an echo wait).
func (s *Server) limitBodyRead(w http.ResponseWriter, r *http.Request) {
	if !hasBody(r) {
		return
	}
	d := s.opts.BodyReadTimeout
	if kind, _ := bodyKind(r); kind == kindMultipart && strings.HasPrefix(r.URL.Path, chatwoot.APIPrefix+"/") {
		d = s.opts.UploadReadTimeout
	}
	// Fails only off a connection (a test's recorder): nothing to bound.
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
}

// bodyReadError maps a failure reading the client's body: a body that did
// not arrive within its read deadline is 408, anything else 400.
func bodyReadError(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: the request body did not arrive in time", ErrBodyTimeout)
	}
	return fmt.Errorf("%w: reading the request body failed", ErrInvalid)
}
