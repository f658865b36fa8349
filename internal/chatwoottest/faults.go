package chatwoottest

import (
	"maps"
	"net"
	"net/http"
	"sync"
	"time"
)

// Route names, for SetFault and Stats.Requests.
const (
	AllRoutes               = "*"
	RouteCable              = "cable"
	RouteInboxShow          = "inbox.show"
	RouteContactCreate      = "contacts.create"
	RouteContactShow        = "contacts.show"
	RouteContactUpdate      = "contacts.update"
	RouteConversationIndex  = "conversations.index"
	RouteConversationCreate = "conversations.create"
	RouteConversationShow   = "conversations.show"
	RouteToggleStatus       = "conversations.toggle_status"
	RouteToggleTyping       = "conversations.toggle_typing"
	RouteUpdateLastSeen     = "conversations.update_last_seen"
	RouteMessageIndex       = "messages.index"
	RouteMessageCreate      = "messages.create"
	RouteMessageUpdate      = "messages.update"
	RouteProfile            = "profile.show"
	RouteAppConversations   = "accounts.conversations.index"
	RouteAppMessages        = "accounts.messages.index"
	RouteNotFound           = "not_found"
)

// Fault changes how a route answers.
type Fault struct {
	// Delay before the request is handled (or faulted). It ends early when
	// the request is cancelled or the server closes.
	Delay time.Duration
	// Status, when non-zero, answers with this status instead of handling
	// the request: 429 is Rack::Attack's text/plain "Retry later\n", 500
	// Rails' JSON error, anything else text/plain with the status text.
	Status int
	// Garbage answers 200 with a body that is not JSON.
	Garbage bool
	// Count limits the fault to this many requests; 0 means until cleared.
	Count int
	// AfterHandling handles the request first (a message is created, its
	// events are broadcast) and then applies Delay and Status to the answer,
	// which is discarded: the client sees the fault of a request that did
	// run, like a Chatwoot that committed and then failed or hung.
	AfterHandling bool
}

// GarbageBody is the body of a Fault with Garbage set.
const GarbageBody = "<html>\x00garbage{\"id\":"

// restControls holds REST fault injection, rate limiting and counters.
type restControls struct {
	mu       sync.Mutex
	faults   map[string]*Fault
	limit    int
	window   int64            // unix minute of the current window
	hits     map[string]int   // client IP -> requests in window
	requests map[string]int64 // route -> requests
}

func (rc *restControls) init(limit int) {
	rc.faults = make(map[string]*Fault)
	rc.hits = make(map[string]int)
	rc.requests = make(map[string]int64)
	rc.limit = limit
}

// SetFault installs a fault for a route name, or AllRoutes for every route
// (a route's own fault takes precedence).
func (s *Server) SetFault(route string, f Fault) {
	rc := &s.rest
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.faults[route] = &f
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	rc := &s.rest
	rc.mu.Lock()
	defer rc.mu.Unlock()
	clear(rc.faults)
}

// SetRateLimit sets the per-client requests per minute; 0 disables it.
func (s *Server) SetRateLimit(perMinute int) {
	rc := &s.rest
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.limit = perMinute
}

func (rc *restControls) requestCounts() map[string]int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return maps.Clone(rc.requests)
}

// admit counts the request and applies the rate limit (a fixed one-minute
// window per client IP, like Rack::Attack's throttle).
func (rc *restControls) admit(route string, r *http.Request) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.requests[route]++
	if rc.limit <= 0 {
		return true
	}
	if w := time.Now().Unix() / 60; w != rc.window {
		rc.window = w
		clear(rc.hits)
	}
	ip := clientIP(r)
	rc.hits[ip]++
	return rc.hits[ip] <= rc.limit
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// takeFault returns the fault applying to route, consuming one use.
func (rc *restControls) takeFault(route string) (Fault, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	key := route
	f := rc.faults[key]
	if f == nil {
		key = AllRoutes
		f = rc.faults[key]
	}
	if f == nil {
		return Fault{}, false
	}
	out := *f
	if f.Count > 0 {
		if f.Count--; f.Count == 0 {
			delete(rc.faults, key)
		}
	}
	return out, true
}

// applyFault runs the fault's delay and answer; it reports whether the
// request was answered.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	if !s.sleep(r.Context(), f.Delay) {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}
	switch {
	case f.Status == http.StatusTooManyRequests:
		retryLater(w)
	case f.Status == http.StatusInternalServerError:
		writeJSON(w, f.Status, railsError{Status: f.Status, Error: "Internal Server Error"})
	case f.Status != 0:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(f.Status)
		w.Write([]byte(http.StatusText(f.Status) + "\n"))
	case f.Garbage:
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write([]byte(GarbageBody))
	default:
		return false
	}
	return true
}

func retryLater(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusTooManyRequests)
	w.Write([]byte("Retry later\n"))
}

// handleThenFault runs the request with its answer discarded, then answers
// with the fault.
func (s *Server) handleThenFault(w http.ResponseWriter, r *http.Request, rt route, f Fault) {
	s.serveAPI(&discardWriter{header: http.Header{}}, r, rt)
	if !s.applyFault(w, r, f) {
		w.WriteHeader(http.StatusInternalServerError)
	}
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
