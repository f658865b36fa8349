package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/chatwoottest"
	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/bolt"
)

const apiToken = "test-api-token"

// fakeRegistry is an in-memory Registry.
type fakeRegistry struct {
	mu      sync.Mutex
	subs    map[string]Subscription
	regs    []Registration // every Register call
	err     error          // returned by every call when set
	calls   int
	batches int   // RegisterBatch calls
	sizes   []int // registrations per RegisterBatch call
	// onBatch, when set, runs at the start of every RegisterBatch call,
	// outside the lock.
	onBatch func(ctx context.Context, regs []Registration)
}

func newFakeRegistry() *fakeRegistry { return &fakeRegistry{subs: map[string]Subscription{}} }

func fakeID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sub_" + hex.EncodeToString(sum[:8])
}

func (f *fakeRegistry) Register(_ context.Context, r Registration) (Subscription, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return Subscription{}, false, f.err
	}
	f.regs = append(f.regs, r)
	id := fakeID(r.Token)
	if sub, ok := f.subs[id]; ok {
		return sub, false, nil
	}
	sub := Subscription{
		ID: id, State: StatePending, InboxIdentifier: r.InboxIdentifier, ContactID: r.ContactID,
		CatchUp: r.InboxIdentifier != "" && r.SourceID != "", Origin: r.Origin,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	f.subs[id] = sub
	return sub, true, nil
}

// refusedToken starts the tokens fakeRegistry.RegisterBatch refuses alone,
// as the subscription limit would.
const refusedToken = "refused-"

// RegisterBatch registers each token as Register, one call for all; those
// starting with refusedToken fail alone with ErrLimit.
func (f *fakeRegistry) RegisterBatch(ctx context.Context, regs []Registration) ([]BatchResult, error) {
	f.mu.Lock()
	f.batches++
	f.sizes = append(f.sizes, len(regs))
	err, hook := f.err, f.onBatch
	f.mu.Unlock()
	if hook != nil {
		hook(ctx, regs)
	}
	if err != nil {
		return nil, err
	}
	results := make([]BatchResult, len(regs))
	for i, r := range regs {
		if strings.HasPrefix(r.Token, refusedToken) {
			results[i].Err = fmt.Errorf("registration %d: %w: the relay holds its maximum", i, ErrLimit)
			continue
		}
		sub, created, err := f.Register(ctx, r)
		if err != nil {
			return results, err
		}
		results[i] = BatchResult{ID: sub.ID, Outcome: Unchanged, Subscription: sub}
		if created {
			results[i].Outcome = Created
		}
	}
	return results, nil
}

func (f *fakeRegistry) Get(_ context.Context, id string) (Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return Subscription{}, f.err
	}
	sub, ok := f.subs[id]
	if !ok {
		return Subscription{}, store.ErrNotFound
	}
	return sub, nil
}

func (f *fakeRegistry) List(_ context.Context, state, cursor string, limit int) ([]Subscription, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, "", f.err
	}
	var out []Subscription
	for _, id := range slices.Sorted(mapsKeys(f.subs)) {
		sub := f.subs[id]
		if id <= cursor || (state != "" && sub.State != state) {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].ID, nil
		}
		out = append(out, sub)
	}
	return out, "", nil
}

func (f *fakeRegistry) Remove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return f.err
	}
	if _, ok := f.subs[id]; !ok {
		return store.ErrNotFound
	}
	delete(f.subs, id)
	return nil
}

func (f *fakeRegistry) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeRegistry) registrations() []Registration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.regs)
}

func (f *fakeRegistry) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// newClient returns a Chatwoot client without retries over hc.
func newClient(t *testing.T, baseURL string, hc *http.Client) *chatwoot.Client {
	t.Helper()
	c, err := chatwoot.New(chatwoot.Options{
		BaseURL: baseURL, HTTPClient: hc, MaxAttempts: 1, Limiter: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newServer builds a Server; opts gets a fake registry, a token and a
// client for baseURL when they are unset.
func newServer(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.Registry == nil {
		opts.Registry = newFakeRegistry()
	}
	if opts.Chatwoot == nil {
		opts.Chatwoot = newClient(t, "http://chatwoot.invalid", nil)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openStore(t *testing.T) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "relay.db"), bolt.Options{SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// env is a Server in front of the fake Chatwoot over an in-memory network.
// Create it inside a synctest bubble.
type env struct {
	t     *testing.T
	fake  *chatwoottest.Server
	inbox chatwoottest.Inbox
	reg   *fakeRegistry
	store *bolt.Store
	srv   *Server
	prom  *prometheus.Registry
}

func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	fake := chatwoottest.New(chatwoottest.Options{Seed: 1})
	ml := fake.ServeMem()
	hc := ml.HTTPClient()
	t.Cleanup(func() {
		hc.Transport.(*http.Transport).CloseIdleConnections()
		fake.Close()
	})
	inbox, err := fake.AddInbox(chatwoottest.InboxConfig{Identifier: "inbox-abc", HMACToken: "hmac-secret"})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, fake: fake, inbox: inbox, reg: newFakeRegistry(), store: openStore(t), prom: prometheus.NewRegistry()}
	opts := Options{
		Registry: e.reg, Chatwoot: newClient(t, "http://chatwoot.test", hc), Store: e.store,
		APITokens: []string{apiToken}, Registerer: e.prom,
	}
	if mod != nil {
		mod(&opts)
	}
	e.srv = newServer(t, opts)
	return e
}

// conversation creates a contact and a conversation and returns the message
// create path.
func (e *env) conversation() (path string, ci chatwoottest.ContactInbox) {
	e.t.Helper()
	ci, err := e.fake.CreateContact(e.inbox.Identifier, chatwoottest.ContactParams{})
	if err != nil {
		e.t.Fatal(err)
	}
	cv, err := e.fake.CreateConversation(e.inbox.Identifier, ci.SourceID)
	if err != nil {
		e.t.Fatal(err)
	}
	return messagesPath(e.inbox.Identifier, ci.SourceID, cv.DisplayID), ci
}

// agentReplies posts n agent replies in the first conversation.
func (e *env) agentReplies(n int) {
	e.t.Helper()
	cv := e.fake.Conversations()[0]
	for i := range n {
		if _, err := e.fake.AgentReply(cv.AccountID, cv.DisplayID, "reply "+strconv.Itoa(i)); err != nil {
			e.t.Fatal(err)
		}
	}
}

func messagesPath(inbox, sourceID string, displayID int64) string {
	return "/public/api/v1/inboxes/" + inbox + "/contacts/" + sourceID + "/conversations/" + itoa(displayID) + "/messages"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (e *env) messageCount() int { return len(e.fake.AllMessages()) }

func (e *env) requests(route string) int64 { return e.fake.Stats().Requests[route] }

func (e *env) do(req *http.Request) *httptest.ResponseRecorder {
	return serve(e.srv, req)
}

// request builds an authorized request; a string body is sent as JSON
// unless a Content-Type header is given.
func request(method, target string, body string, header ...string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

func serve(s *Server, req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

// wantError checks a relay error and that it quotes none of secrets: the
// relay's JSON error, or on proxied routes (Relay-Error set) Chatwoot's
// error shape.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string, secrets ...string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if rec.Header().Get(headerError) != "" {
		wantChatwootError(t, rec, code, secrets...)
		return
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body ErrorBody
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("error body %q: %v", rec.Body, err)
	}
	if body.Error.Code != code || body.Error.Message == "" {
		t.Errorf("error = %+v, want code %q and a message", body.Error, code)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(rec.Body.String(), s) {
			t.Errorf("error body %q contains a secret", rec.Body)
		}
	}
}

// wantChatwootError checks an error the relay answered on a proxied route:
// Chatwoot's body shape, exactly, and the relay's code and message in
// headers.
func wantChatwootError(t *testing.T, rec *httptest.ResponseRecorder, code string, secrets ...string) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q, want Rails' application/json; charset=utf-8", ct)
	}
	if got := rec.Header().Get(headerError); got != code {
		t.Errorf("%s = %q, want %q", headerError, got, code)
	}
	if rec.Header().Get(headerErrorMessage) == "" {
		t.Errorf("no %s", headerErrorMessage)
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if rec.Code == http.StatusUnprocessableEntity {
		var body ChatwootValidationError
		if err := dec.Decode(&body); err != nil || body.Message == "" || body.Attributes == nil {
			t.Errorf("422 body %q: %v, want Chatwoot's {message, attributes}", rec.Body, err)
		}
	} else {
		var body ChatwootError
		if err := dec.Decode(&body); err != nil || body.Status != rec.Code || body.Error != railsReason(rec.Code) {
			t.Errorf("error body %q: %v, want Chatwoot's {status, error}", rec.Body, err)
		}
	}
	for _, s := range secrets {
		if s != "" && (strings.Contains(rec.Body.String(), s) || strings.Contains(rec.Header().Get(headerErrorMessage), s)) {
			t.Errorf("error %q / %q contains a secret", rec.Body, rec.Header().Get(headerErrorMessage))
		}
	}
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", rec.Body, err)
	}
	return v
}

// upstream is a scripted Chatwoot: it records requests and answers with
// respond, in process (no network).
type upstream struct {
	mu      sync.Mutex
	reqs    []recordedRequest
	respond func(w http.ResponseWriter, r *http.Request, body []byte)
}

type recordedRequest struct {
	Method, Path, RawPath, Query string
	Header                       http.Header
	Body                         []byte
}

func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	u.mu.Lock()
	u.reqs = append(u.reqs, recordedRequest{req.Method, req.URL.Path, req.URL.RawPath, req.URL.RawQuery, req.Header.Clone(), body})
	u.mu.Unlock()
	rec := httptest.NewRecorder()
	u.respond(rec, req, body)
	return rec.Result(), nil
}

func (u *upstream) requests() []recordedRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.reqs)
}

// newUpstreamServer returns a Server whose Chatwoot is u.
func newUpstreamServer(t *testing.T, u *upstream, mod func(*Options)) (*Server, *fakeRegistry) {
	t.Helper()
	reg := newFakeRegistry()
	opts := Options{
		Registry: reg, Chatwoot: newClient(t, "http://chatwoot.test", &http.Client{Transport: u}),
		APITokens: []string{apiToken}, Store: openStore(t),
	}
	if mod != nil {
		mod(&opts)
	}
	return newServer(t, opts), reg
}

func respondJSON(status int, body string) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

var errBoom = errors.New("registry: boom")

func chatwootHash(key, id string) string { return chatwoot.IdentifierHash(key, id) }
