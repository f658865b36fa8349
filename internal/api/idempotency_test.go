package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
	"github.com/relayhq/relay/internal/store"
)

// roundTripFunc is a scripted Chatwoot transport.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestIdempotencyResendRunningWindow: a send posted again (its first
// attempt found absent) may still be running for RequestTimeout +
// OutcomeGrace from when it began, not from the first attempt: a retry
// right after its answer was lost gets 503, not a third post.
func TestIdempotencyResendRunningWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var posts atomic.Int64
		tr := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodPost {
				io.Copy(io.Discard, req.Body)
				posts.Add(1)
				return nil, io.ErrUnexpectedEOF // the answer is lost; Chatwoot has not committed (yet)
			}
			return jsonResponse(req, 200, `[]`), nil
		})
		s := newServer(t, Options{Chatwoot: newClient(t, "http://chatwoot.test", &http.Client{Transport: tr}),
			APITokens: []string{apiToken}, Store: openStore(t)})
		send := func() *httptest.ResponseRecorder {
			return serve(s, request("POST", messagesPath("inboxA", "src1", 1), `{"content":"x"}`, headerIdempotencyKey, "k"))
		}
		send()
		time.Sleep(2 * time.Minute) // the first send cannot be running any more
		send()                      // found absent: posted again, answer lost
		if n := posts.Load(); n != 2 {
			t.Fatalf("%d posts, want 2", n)
		}
		time.Sleep(time.Second)
		wantError(t, send(), 503, CodeUnavailable, "src1")
		if n := posts.Load(); n != 2 {
			t.Errorf("posted a third time a second after the second send began")
		}
		time.Sleep(2 * time.Minute)
		send()
		if n := posts.Load(); n != 3 {
			t.Errorf("%d posts once the second send cannot be running, want 3", n)
		}
	})
}

// completeFailing is a store whose final answers cannot be stored while
// fail is set (attempt records still can).
type completeFailing struct {
	store.Idempotency
	fail atomic.Bool
}

func (c *completeFailing) CompleteIdempotency(ctx context.Context, key string, b []byte, ttl time.Duration) error {
	if c.fail.Load() && !strings.HasSuffix(key, ":attempt") {
		return errors.New("store: boom")
	}
	return c.Idempotency.CompleteIdempotency(ctx, key, b, ttl)
}

// TestIdempotencyCompleteFails: when the final answer cannot be stored
// (after a 2xx, or after the lookup found the message), the key's lock is
// released all the same: the retry finds the message instead of getting
// 409 until the lock expires.
func TestIdempotencyCompleteFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &completeFailing{}
		e := newEnv(t, func(o *Options) { st.Idempotency = o.Store; o.Store = st })
		path, _ := e.conversation()
		send := func() *httptest.ResponseRecorder {
			return e.do(request("POST", path, `{"content":"x"}`, headerIdempotencyKey, "k"))
		}
		st.fail.Store(true)
		if rec := send(); rec.Code != 200 {
			t.Fatalf("first: %d %s", rec.Code, rec.Body)
		}
		for i := range 2 { // after the 2xx, then after the lookup found it
			if rec := send(); rec.Code != 200 || rec.Header().Get(headerReplay) != "true" {
				t.Fatalf("retry %d: %d %s, want the message found", i, rec.Code, rec.Body)
			}
		}
		st.fail.Store(false)
		send()
		if rec := send(); rec.Code != 200 || rec.Header().Get(headerReplay) != "true" {
			t.Errorf("replay: %d %s", rec.Code, rec.Body)
		}
		if n := e.requests(chatwoottest.RouteMessageCreate); n != 1 {
			t.Errorf("%d message creates, want 1", n)
		}
	})
}

// TestIdempotencyQuery: Rails merges the query into the create's params,
// so the query is part of a keyed send's fingerprint (pairs in any order
// are the same query), and the fields the relay reads from the body are
// refused in the query: content on keyed sends, echo_id on every send.
func TestIdempotencyQuery(t *testing.T) {
	u := &upstream{respond: respondJSON(200, `{"id":1,"content":"x","message_type":0}`)}
	s, _ := newUpstreamServer(t, u, nil)
	path := messagesPath("inboxA", "src1", 1)
	send := func(query, key string) *httptest.ResponseRecorder {
		h := []string{}
		if key != "" {
			h = []string{headerIdempotencyKey, key}
		}
		return serve(s, request("POST", path+query, `{"content":"x"}`, h...))
	}
	if rec := send("?reply_to=1&a=b", "k"); rec.Code != 200 {
		t.Fatalf("first: %d %s", rec.Code, rec.Body)
	}
	if rec := send("?a=b&reply_to=%31", "k"); rec.Code != 200 || rec.Header().Get(headerReplay) != "true" {
		t.Errorf("same query reordered: %d %s, want the replay", rec.Code, rec.Body)
	}
	wantError(t, send("?reply_to=2&a=b", "k"), 422, CodeKeyReused, "src1")
	wantError(t, send("", "k"), 422, CodeKeyReused, "src1")
	for _, q := range []string{"?content=y", "?content%5B%5D=y", "?echo_id=e", "?x=1&echo_id%5B%5D=e"} {
		wantError(t, send(q, "k2"), 400, CodeInvalid, "src1")
	}
	wantError(t, send("?echo_id=e", ""), 400, CodeInvalid, "src1")
	if n := len(u.requests()); n != 1 {
		t.Errorf("%d upstream requests, want 1", n)
	}
	if rec := send("?content=y", ""); rec.Code != 200 {
		t.Errorf("content in the query of a send without a key: %d %s, want it forwarded", rec.Code, rec.Body)
	}
}
