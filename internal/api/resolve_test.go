package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// TestIdempotencyEchoReused: a client reusing its own echo_id for a later
// message: the retry of the later send (Rails' 500, nothing created) is not
// answered with the earlier message its echo points to; the later message
// is posted.
func TestIdempotencyEchoReused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		path, _ := e.conversation()
		if rec := e.do(request("POST", path, `{"content":"first","echo_id":"e1"}`, headerIdempotencyKey, "k1")); rec.Code != 200 {
			t.Fatalf("first: %d %s", rec.Code, rec.Body)
		}
		e.srv.Echoes().ObserveMessage("e1", itoa(e.fake.AllMessages()[0].ID)) // the live echo
		e.fake.SetFault(chatwoottest.RouteMessageCreate, chatwoottest.Fault{Status: 500, Count: 1})
		send := func() *httptest.ResponseRecorder {
			return e.do(request("POST", path, `{"content":"second","echo_id":"e1"}`, headerIdempotencyKey, "k2"))
		}
		if rec := send(); rec.Code != 500 {
			t.Fatalf("second: %d %s, want Chatwoot's 500", rec.Code, rec.Body)
		}
		rec := send()
		if rec.Code != 200 || rec.Header().Get(headerReplay) != "" || decode[map[string]any](t, rec)["content"] != "second" {
			t.Errorf("retry of the second: %d replay %q %s, want the second message posted", rec.Code, rec.Header().Get(headerReplay), rec.Body)
		}
		if n := e.messageCount(); n != 2 {
			t.Errorf("%d messages, want 2", n)
		}
	})
}

// TestIdempotencyEchoElsewhere: the attempt's echo_id seen on a message of
// another conversation does not keep the key undecided.
func TestIdempotencyEchoElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		other, _ := e.conversation()
		path, _ := e.conversation()
		if rec := e.do(request("POST", other, `{"content":"hello","echo_id":"1"}`)); rec.Code != 200 {
			t.Fatalf("other conversation: %d %s", rec.Code, rec.Body)
		}
		e.srv.Echoes().ObserveMessage("1", itoa(e.fake.AllMessages()[0].ID))
		e.srv.Echoes().ObserveMessage("2", "999999") // not a message of this Chatwoot's lists at all
		for _, echo := range []string{"1", "2"} {
			e.fake.SetFault(chatwoottest.RouteMessageCreate, chatwoottest.Fault{Status: 500, Count: 1})
			send := func() *httptest.ResponseRecorder {
				return e.do(request("POST", path, `{"content":"hello `+echo+`","echo_id":"`+echo+`"}`, headerIdempotencyKey, "k"+echo))
			}
			send()
			if rec := send(); rec.Code != 200 || rec.Header().Get(headerReplay) != "" {
				t.Errorf("echo %s: retry %d %s, want the message posted", echo, rec.Code, rec.Body)
			}
		}
		if n := e.messageCount(); n != 3 {
			t.Errorf("%d messages, want 3", n)
		}
	})
}

// TestIdempotencyConversationGone: after an unknown outcome, a message
// list answering 404 (the conversation or contact is gone) counts as an
// empty conversation: once the send cannot be running any more, the retry
// posts again and gets Chatwoot's 404 instead of 503 for the key's life.
func TestIdempotencyConversationGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var posts atomic.Int64
		gone := `{"status":404,"error":"Not Found"}`
		tr := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodPost {
				io.Copy(io.Discard, req.Body)
				if posts.Add(1) == 1 {
					return nil, io.ErrUnexpectedEOF // answer lost
				}
			}
			return jsonResponse(req, 404, gone), nil
		})
		s := newServer(t, Options{Chatwoot: newClient(t, "http://chatwoot.test", &http.Client{Transport: tr}),
			APITokens: []string{apiToken}, Store: openStore(t)})
		send := func() *httptest.ResponseRecorder {
			return serve(s, request("POST", messagesPath("inboxA", "src1", 1), `{"content":"x"}`, headerIdempotencyKey, "k"))
		}
		send()
		wantError(t, send(), 503, CodeUnavailable, "src1") // the send may still be running
		time.Sleep(2 * time.Minute)
		for i := range 2 {
			if rec := send(); rec.Code != 404 || rec.Body.String() != gone {
				t.Errorf("retry %d: %d %s, want Chatwoot's 404", i, rec.Code, rec.Body)
			}
		}
		if n := posts.Load(); n != 3 {
			t.Errorf("%d posts, want 3", n)
		}
	})
}
