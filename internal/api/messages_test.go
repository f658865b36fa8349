package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/chatwoottest"
	"github.com/relayhq/relay/internal/fixtures"
	"github.com/relayhq/relay/internal/store"
)

// multipartBody builds a multipart form with fields and files (name ->
// content), fields first.
func multipartBody(t *testing.T, fields, files map[string]string) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	for name, content := range files {
		fw, err := mw.CreateFormFile("attachments[]", name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(fw, content)
	}
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

func TestMessageCreateEchoID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		path, _ := e.conversation()
		mp, mpType := multipartBody(t, map[string]string{"content": "with file"}, map[string]string{"a.png": "PNGDATA"})
		mpEcho, mpEchoType := multipartBody(t, map[string]string{"content": "with echo", "echo_id": "client-mp"}, map[string]string{"b.txt": "text"})
		tests := []struct {
			name, contentType, body string
			wantEcho                string // "" = generated
		}{
			{"json", "application/json", `{"content":"hi"}`, ""},
			{"json with echo_id", "application/json", `{"content":"hi","echo_id":"client-1"}`, "client-1"},
			{"json numeric echo_id", "application/json", `{"content":"hi","echo_id":77}`, "77"},
			{"json null echo_id", "application/json", `{"content":"hi","echo_id":null}`, ""},
			{"form", "application/x-www-form-urlencoded", "content=hi+there", ""},
			{"form with echo_id", "application/x-www-form-urlencoded", "content=hi&echo_id=client-2", "client-2"},
			{"multipart", mpType, string(mp), ""},
			{"multipart with echo_id", mpEchoType, string(mpEcho), "client-mp"},
			{"no body", "", "", ""},
		}
		for i, tt := range tests {
			req := request("POST", path, tt.body, "Content-Type", tt.contentType)
			if tt.contentType == "" {
				req.Header.Del("Content-Type")
			}
			rec := e.do(req)
			if rec.Code != 200 {
				t.Fatalf("%s: %d %s", tt.name, rec.Code, rec.Body)
			}
			msgs := e.fake.AllMessages()
			if len(msgs) != i+1 {
				t.Fatalf("%s: %d messages, want %d", tt.name, len(msgs), i+1)
			}
			got := msgs[i]
			header := rec.Header().Get(headerEchoID)
			if got.EchoID != header || header == "" {
				t.Errorf("%s: Chatwoot got echo_id %q, Relay-Echo-Id %q", tt.name, got.EchoID, header)
			}
			if tt.wantEcho != "" && header != tt.wantEcho {
				t.Errorf("%s: echo_id %q, want the client's %q", tt.name, header, tt.wantEcho)
			}
			if tt.wantEcho == "" && len(header) != 36 {
				t.Errorf("%s: generated echo_id %q is not uuid-shaped", tt.name, header)
			}
			if strings.HasPrefix(tt.name, "multipart") && got.Attachments != 1 {
				t.Errorf("%s: %d attachments, want 1", tt.name, got.Attachments)
			}
			if tt.name == "form" && got.Content != "hi there" {
				t.Errorf("form content = %q", got.Content)
			}
			var rest map[string]any
			if json.Unmarshal(rec.Body.Bytes(), &rest) != nil || rest["id"] == nil {
				t.Errorf("%s: Chatwoot's message not returned: %s", tt.name, rec.Body)
			}
		}
	})
}

func TestMessageCreateBadInput(t *testing.T) {
	bigMP, bigType := multipartBody(t, nil, map[string]string{"big.bin": strings.Repeat("z", 4<<10)})
	tests := []struct {
		name, query, contentType, body string
		status                         int
		chunked                        bool
		header                         []string
	}{
		{"malformed JSON", "", "application/json", `{"content":`, 400, false, nil},
		{"JSON array", "", "application/json", `["hi"]`, 400, false, nil},
		{"text body", "", "text/plain", "hi", 415, false, nil},
		{"malformed form", "", "application/x-www-form-urlencoded", "content=%zz", 400, false, nil},
		{"oversized JSON", "", "application/json", `{"content":"` + strings.Repeat("x", 2<<20) + `"}`, 413, false, nil},
		{"oversized multipart", "", bigType, string(bigMP), 413, false, nil},
		{"oversized chunked multipart", "", bigType, string(bigMP), 413, true, nil},
		{"truncated multipart", "", bigType, string(bigMP[:200]), 400, true, nil},
		{"empty Idempotency-Key", "", "application/json", `{"content":"x"}`, 400, false, []string{headerIdempotencyKey, ""}},
		{"two Idempotency-Keys", "", "application/json", `{"content":"x"}`, 400, false, []string{headerIdempotencyKey, "a", "b"}},
		{"bad wait", "?wait=forever", "application/json", `{"content":"x"}`, 400, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, func(o *Options) { o.MaxMultipartBytes = 1 << 10 })
				path, ci := e.conversation()
				req := request("POST", path+tt.query, tt.body, "Content-Type", tt.contentType)
				if tt.header != nil {
					req.Header[tt.header[0]] = tt.header[1:]
				}
				if tt.chunked {
					req.ContentLength = -1
					req.Body = io.NopCloser(strings.NewReader(tt.body))
				}
				wantError(t, e.do(req), tt.status, CodeInvalid, ci.SourceID, e.inbox.Identifier)
				if n := e.messageCount(); n != 0 {
					t.Errorf("%d messages created from a bad request", n)
				}
			})
		})
	}
}

func TestIdempotentSequentialSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		path, _ := e.conversation()
		send := func(key, target string) *httptest.ResponseRecorder {
			return e.do(request("POST", target, `{"content":"once"}`, headerIdempotencyKey, key))
		}
		first := send("key-1", path)
		second := send("key-1", path)
		if first.Code != 200 || second.Code != 200 {
			t.Fatalf("statuses %d, %d", first.Code, second.Code)
		}
		if n := e.messageCount(); n != 1 {
			t.Fatalf("%d messages for one key, want 1", n)
		}
		if first.Header().Get(headerReplay) != "" || second.Header().Get(headerReplay) != "true" {
			t.Errorf("Idempotent-Replay: first %q, second %q", first.Header().Get(headerReplay), second.Header().Get(headerReplay))
		}
		if !bytes.Equal(first.Body.Bytes(), second.Body.Bytes()) ||
			first.Header().Get("Content-Type") != second.Header().Get("Content-Type") ||
			first.Header().Get(headerEchoID) != second.Header().Get(headerEchoID) {
			t.Errorf("replay differs:\n%v %s\n%v %s", first.Header(), first.Body, second.Header(), second.Body)
		}
		if got := testutil.ToFloat64(e.srv.m.replays); got != 1 {
			t.Errorf("replays metric = %v", got)
		}

		// Another key sends again.
		send("key-2", path)
		if n := e.messageCount(); n != 2 {
			t.Errorf("%d messages, want 2", n)
		}
	})
}

// TestIdempotencyKeyReuse: a key sent again with another request is refused
// with 422 and sends nothing; the same request spelled differently (escapes,
// .json, trailing slash, another multipart boundary) is the same request;
// keys of different API tokens are independent.
func TestIdempotencyKeyReuse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.APITokens = []string{apiToken, "other-token"} })
		path, ci := e.conversation()
		path2, _ := e.conversation()
		send := func(target, body string, header ...string) *httptest.ResponseRecorder {
			return e.do(request("POST", target, body, append([]string{headerIdempotencyKey, "k"}, header...)...))
		}
		if rec := send(path, `{"content":"first"}`); rec.Code != 200 {
			t.Fatalf("first: %d %s", rec.Code, rec.Body)
		}
		escaped := strings.Replace(path, "-", "%2D", 1) // in the source_id
		for _, target := range []string{escaped, path + ".json", path + "/"} {
			if rec := send(target, `{"content":"first"}`); rec.Header().Get(headerReplay) != "true" {
				t.Errorf("%s: %d %v, want a replay", strings.Replace(target, ci.SourceID, "SRC", 1), rec.Code, rec.Header())
			}
		}
		for name, rec := range map[string]*httptest.ResponseRecorder{
			"other body":         send(path, `{"content":"second"}`),
			"other conversation": send(path2, `{"content":"first"}`),
			"form body":          send(path, "content=first", "Content-Type", "application/x-www-form-urlencoded"),
		} {
			wantError(t, rec, 422, CodeKeyReused, ci.SourceID)
			if rec.Header().Get(headerReplay) != "" {
				t.Errorf("%s: a refused reuse is marked as a replay", name)
			}
		}
		other := send(path, `{"content":"second"}`, "Authorization", "Bearer other-token")
		if other.Code != 200 || other.Header().Get(headerReplay) != "" {
			t.Errorf("same key, other API token: %d %v, want a fresh send", other.Code, other.Header())
		}
		if n := e.messageCount(); n != 2 {
			t.Errorf("%d messages, want 2", n)
		}
	})
}

// TestIdempotencyKeyReuseMultipart: multipart bodies are compared part by
// part, whatever their boundary.
func TestIdempotencyKeyReuseMultipart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		path, _ := e.conversation()
		send := func(file string) *httptest.ResponseRecorder {
			body, ct := multipartBody(t, map[string]string{"content": "see file"}, map[string]string{"a.txt": file})
			return e.do(request("POST", path, string(body), "Content-Type", ct, headerIdempotencyKey, "k"))
		}
		if rec := send("one"); rec.Code != 200 {
			t.Fatalf("first: %d %s", rec.Code, rec.Body)
		}
		if rec := send("one"); rec.Header().Get(headerReplay) != "true" {
			t.Errorf("same parts, new boundary: %d %v, want a replay", rec.Code, rec.Header())
		}
		wantError(t, send("two"), 422, CodeKeyReused)
		if n := e.messageCount(); n != 1 {
			t.Errorf("%d messages, want 1", n)
		}
	})
}

// TestIdempotencyKeyReuseUnsettled: after an unknown outcome, the retry
// must be the same request too; a multipart body that differs is cut off
// before Chatwoot gets its end.
func TestIdempotencyKeyReuseUnsettled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		path, _ := e.conversation()
		e.fake.SetFault(chatwoottest.RouteMessageCreate, chatwoottest.Fault{Status: 500, Count: 1})
		send := func(file string) *httptest.ResponseRecorder {
			body, ct := multipartBody(t, map[string]string{"content": "see file"}, map[string]string{"a.txt": file})
			return e.do(request("POST", path, string(body), "Content-Type", ct, headerIdempotencyKey, "k"))
		}
		if rec := send("one"); rec.Code != 500 {
			t.Fatalf("first: %d %s", rec.Code, rec.Body)
		}
		wantError(t, send("two"), 422, CodeKeyReused)
		if n := e.messageCount(); n != 0 {
			t.Fatalf("%d messages after a refused reuse, want 0", n)
		}
		rec := send("one")
		if rec.Code != 200 || e.messageCount() != 1 {
			t.Errorf("same request: %d %s, %d messages; want it sent", rec.Code, rec.Body, e.messageCount())
		}
	})
}

func TestIdempotentConcurrentSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		path, _ := e.conversation()
		e.fake.SetFault(chatwoottest.RouteMessageCreate, chatwoottest.Fault{Delay: 3 * time.Second, Count: 1})
		firstDone := make(chan *httptest.ResponseRecorder)
		go func() {
			firstDone <- e.do(request("POST", path, `{"content":"slow"}`, headerIdempotencyKey, "k"))
		}()
		synctest.Wait() // the first send is in flight at Chatwoot
		rec := e.do(request("POST", path, `{"content":"slow"}`, headerIdempotencyKey, "k"))
		wantError(t, rec, 409, CodeConflict)
		if rec.Header().Get("Retry-After") == "" {
			t.Error("409 without Retry-After")
		}
		first := <-firstDone
		if first.Code != 200 {
			t.Fatalf("first send: %d %s", first.Code, first.Body)
		}
		third := e.do(request("POST", path, `{"content":"slow"}`, headerIdempotencyKey, "k"))
		if third.Header().Get(headerReplay) != "true" || third.Body.String() != first.Body.String() {
			t.Errorf("after the first finished: %d %v", third.Code, third.Header())
		}
		if n := e.requests(chatwoottest.RouteMessageCreate); n != 1 {
			t.Errorf("%d upstream message creates, want 1", n)
		}
		if got := testutil.ToFloat64(e.srv.m.conflicts); got != 1 {
			t.Errorf("conflicts metric = %v", got)
		}
	})
}

// TestIdempotencyOutcomes: only final outcomes are stored. A send that
// certainly created nothing is posted again; an unknown outcome is resolved
// on the retry by looking the message up: found -> answered with it, absent
// -> posted again with the same echo_id, cannot tell yet -> 503. Only
// Rails' own 500 says that the create is not running any more.
func TestIdempotencyOutcomes(t *testing.T) {
	after := func(f chatwoottest.Fault) chatwoottest.Fault { f.AfterHandling = true; return f }
	tests := []struct {
		name   string
		fault  chatwoottest.Fault
		first  int
		found  bool // the retry finds the message (answered, not posted)
		undec  bool // the first retry cannot tell yet (503), a later one can
		resent bool // the retry posts again
	}{
		{"429", chatwoottest.Fault{Status: 429, Count: 1}, 429, false, false, true},
		{"404", chatwoottest.Fault{Status: 404, Count: 1}, 404, false, false, true},
		{"500 nothing created", chatwoottest.Fault{Status: 500, Count: 1}, 500, false, false, true},
		// A gateway's 5xx (not Rails' JSON 500): the create may still be running.
		{"502 nothing created", chatwoottest.Fault{Status: 502, Count: 1}, 502, false, true, true},
		{"503 nothing created", chatwoottest.Fault{Status: 503, Count: 1}, 503, false, true, true},
		{"504 nothing created", chatwoottest.Fault{Status: 504, Count: 1}, 504, false, true, true},
		{"500 after creating", after(chatwoottest.Fault{Status: 500, Count: 1}), 500, true, false, false},
		{"502 after creating", after(chatwoottest.Fault{Status: 502, Count: 1}), 502, true, false, false},
		{"timeout after creating", after(chatwoottest.Fault{Delay: time.Hour, Count: 1}), 504, true, false, false},
		{"timeout nothing created", chatwoottest.Fault{Delay: time.Hour, Count: 1}, 504, false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, nil)
				path, ci := e.conversation()
				e.fake.SetFault(chatwoottest.RouteMessageCreate, tt.fault)
				send := func() *httptest.ResponseRecorder {
					return e.do(request("POST", path, `{"content":"x"}`, headerIdempotencyKey, "k"))
				}
				first := send()
				if first.Code != tt.first {
					t.Fatalf("first: %d %s, want %d", first.Code, first.Body, tt.first)
				}
				echo := first.Header().Get(headerEchoID)
				retry := send()
				if tt.undec {
					wantError(t, retry, 503, CodeUnavailable, ci.SourceID)
					if retry.Header().Get("Retry-After") == "" {
						t.Error("undecided retry without Retry-After")
					}
					time.Sleep(time.Minute) // the first attempt cannot be running any more
					retry = send()
				}
				if retry.Code != 200 || retry.Header().Get(headerEchoID) != echo {
					t.Fatalf("retry: %d %s echo %q, want 200 with echo %q", retry.Code, retry.Body, retry.Header().Get(headerEchoID), echo)
				}
				if got := retry.Header().Get(headerReplay) == "true"; got != tt.found {
					t.Errorf("retry Idempotent-Replay %v, want %v", got, tt.found)
				}
				creates := int64(1)
				if tt.resent {
					creates = 2
				}
				if n := e.requests(chatwoottest.RouteMessageCreate); n != creates {
					t.Errorf("%d upstream message creates, want %d", n, creates)
				}
				msgs := e.fake.AllMessages()
				if len(msgs) != 1 || msgs[0].EchoID != echo {
					t.Fatalf("messages %+v, want one with echo_id %q", msgs, echo)
				}
				if v := decode[map[string]any](t, retry); v["id"] != float64(msgs[0].ID) {
					t.Errorf("retry body %s is not the message", retry.Body)
				}
				// Now final: replayed without asking Chatwoot.
				before := e.fake.Stats().Requests
				third := send()
				if third.Header().Get(headerReplay) != "true" || third.Body.String() != retry.Body.String() {
					t.Errorf("third: %d %v %s, want the retry's answer replayed", third.Code, third.Header(), third.Body)
				}
				if after := e.fake.Stats().Requests; !maps.Equal(before, after) {
					t.Errorf("a replay called Chatwoot: %v -> %v", before, after)
				}
			})
		})
	}
}

// TestIdempotencyLookup: the lookup of an unknown outcome cannot decide
// when Chatwoot's list fails or when more messages came after the send than
// it reads; the key stays unsettled, and the echo memory finds the message
// by id whatever came after it.
func TestIdempotencyLookup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		path, ci := e.conversation()
		e.fake.SetFault(chatwoottest.RouteMessageCreate, chatwoottest.Fault{Status: 500, Count: 1, AfterHandling: true})
		send := func() *httptest.ResponseRecorder {
			return e.do(request("POST", path, `{"content":"lost answer"}`, headerIdempotencyKey, "k"))
		}
		echo := send().Header().Get(headerEchoID)
		for _, f := range []chatwoottest.Fault{{Status: 500, Count: 1}, {Garbage: true, Count: 1}} {
			e.fake.SetFault(chatwoottest.RouteMessageIndex, f)
			wantError(t, send(), 503, CodeUnavailable, ci.SourceID)
		}
		e.agentReplies(messagePageSize * maxLookupPages)
		time.Sleep(time.Hour) // whatever the time, the send is out of reach
		wantError(t, send(), 503, CodeUnavailable, ci.SourceID)
		if n := e.requests(chatwoottest.RouteMessageCreate); n != 1 {
			t.Fatalf("%d upstream message creates while undecided, want 1", n)
		}
		msg := e.fake.AllMessages()[0]
		e.srv.Echoes().ObserveMessage(echo, itoa(msg.ID)) // the live echo, as the event stream reports it
		rec := send()
		if rec.Code != 200 || rec.Header().Get(headerReplay) != "true" || decode[map[string]any](t, rec)["id"] != float64(msg.ID) {
			t.Errorf("with the echo seen: %d %s", rec.Code, rec.Body)
		}
		if n := e.requests(chatwoottest.RouteMessageCreate); n != 1 {
			t.Errorf("%d upstream message creates, want 1", n)
		}
		for outcome, want := range map[string]float64{lookupUndecided: 3, lookupFound: 1, lookupAbsent: 0} {
			if got := testutil.ToFloat64(e.srv.m.lookups.WithLabelValues(outcome)); got != want {
				t.Errorf("lookups{outcome=%q} = %v, want %v", outcome, got, want)
			}
		}
	})
}

// TestIdempotencyLookupPages: without the echo, the lookup reads back page
// by page to the send.
func TestIdempotencyLookupPages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		path, _ := e.conversation()
		e.fake.SetFault(chatwoottest.RouteMessageCreate, chatwoottest.Fault{Status: 500, Count: 1, AfterHandling: true})
		send := func() *httptest.ResponseRecorder {
			return e.do(request("POST", path, `{"content":"lost answer"}`, headerIdempotencyKey, "k"))
		}
		send()
		e.agentReplies(2*messagePageSize + 5)
		rec := send()
		if rec.Code != 200 || rec.Header().Get(headerReplay) != "true" || decode[map[string]any](t, rec)["content"] != "lost answer" {
			t.Errorf("retry: %d %s, want the message found", rec.Code, rec.Body)
		}
		if n := e.requests(chatwoottest.RouteMessageCreate); n != 1 {
			t.Errorf("%d upstream message creates, want 1", n)
		}
	})
}

func TestIdempotencyChatwootDown(t *testing.T) {
	s, _ := newDownServer(t, nil)
	path := messagesPath("inbox-abc", "src-1", 1)
	req := request("POST", path, `{"content":"x"}`, headerIdempotencyKey, "k")
	wantError(t, serve(s, req), 502, CodeUpstream, "src-1")
	// Connection refused: nothing was sent, so the key is free again and
	// its attempt record says nothing was sent.
	k := idempotencyKeys(req, "k")
	state, _, err := s.opts.Store.ReserveIdempotency(context.Background(), k.lock, time.Minute)
	if err != nil || state != store.IdempotencyReserved {
		t.Errorf("key after a refused connection: %v %v, want reserved (released)", state, err)
	}
	a, err := s.loadAttempt(context.Background(), k)
	if err != nil || a == nil || a.Sent {
		t.Errorf("attempt after a refused connection: %+v %v, want one not sent", a, err)
	}
}

func TestIdempotencyWithoutStore(t *testing.T) {
	u := &upstream{respond: respondJSON(200, `{}`)}
	s, _ := newUpstreamServer(t, u, func(o *Options) { o.Store = nil })
	path := messagesPath("i", "s", 1)
	wantError(t, serve(s, request("POST", path, `{"content":"x"}`, headerIdempotencyKey, "k")), 503, CodeUnavailable)
	if n := len(u.requests()); n != 0 {
		t.Errorf("%d upstream requests", n)
	}
}

// TestIdempotencyStoreKey: keys are scoped per API token and hold neither
// the token nor the key.
func TestIdempotencyStoreKey(t *testing.T) {
	req := request("POST", "/x", "", headerIdempotencyKey, "client-key")
	k := idempotencyKeys(req, "client-key")
	if strings.Contains(k.lock+k.attempt, apiToken) || strings.Contains(k.lock+k.attempt, "client-key") {
		t.Errorf("store keys %+v hold the token or the key", k)
	}
	req.Header.Set("Authorization", "Bearer another-token")
	if k2 := idempotencyKeys(req, "client-key"); k2 == k {
		t.Error("same store keys for two API tokens")
	}
}

func TestWaitEcho(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		path, _ := e.conversation()
		done := make(chan *httptest.ResponseRecorder)
		go func() { done <- e.do(request("POST", path+"?wait=echo", `{"content":"hi"}`)) }()
		synctest.Wait() // Chatwoot answered; the relay waits for the echo
		select {
		case rec := <-done:
			t.Fatalf("answered before the echo: %d %v", rec.Code, rec.Header())
		default:
		}
		msgs := e.fake.AllMessages()
		if len(msgs) != 1 || msgs[0].EchoID == "" {
			t.Fatalf("messages = %+v", msgs)
		}
		e.srv.Echoes().Observe("someone-else")
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("answered after another message's echo")
		default:
		}
		e.srv.Echoes().Observe(msgs[0].EchoID)
		rec := <-done
		if rec.Code != 200 || rec.Header().Get(headerEcho) != echoReceived || rec.Header().Get(headerEchoID) != msgs[0].EchoID {
			t.Errorf("after the echo: %d %v", rec.Code, rec.Header())
		}
		if e.srv.Echoes().Pending() != 0 {
			t.Errorf("%d expectations left", e.srv.Echoes().Pending())
		}
		if got := testutil.ToFloat64(e.srv.m.echoWaits.WithLabelValues(echoReceived)); got != 1 {
			t.Errorf("echo waits received = %v", got)
		}
	})
}

func TestWaitEchoTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		path, _ := e.conversation()
		start := time.Now()
		rec := e.do(request("POST", path+"?wait=echo", `{"content":"hi"}`))
		if rec.Code != 200 || rec.Header().Get(headerEcho) != echoTimeout {
			t.Fatalf("%d %v", rec.Code, rec.Header())
		}
		if waited := time.Since(start); waited != DefaultEchoWait {
			t.Errorf("waited %v in the bubble, want EchoWait %v", waited, DefaultEchoWait)
		}
		if e.srv.Echoes().Pending() != 0 {
			t.Errorf("%d expectations left", e.srv.Echoes().Pending())
		}
		// An upstream error is returned at once, without waiting.
		e.fake.SetFault(chatwoottest.RouteMessageCreate, chatwoottest.Fault{Status: 404, Count: 1})
		rec = e.do(request("POST", path+"?wait=echo", `{"content":"hi"}`))
		if rec.Code != 404 || rec.Header().Get(headerEcho) != "" {
			t.Errorf("404: %d %v", rec.Code, rec.Header())
		}
	})
}

// TestWaitEchoBeforeResponse: the echo can arrive on the cable before
// Chatwoot's HTTP answer; the expectation exists before the POST.
func TestWaitEchoBeforeResponse(t *testing.T) {
	var tracker *EchoTracker
	fixture := fixtures.Read(t, "api/message_create.json")
	u := &upstream{respond: func(w http.ResponseWriter, r *http.Request, body []byte) {
		var b struct {
			EchoID string `json:"echo_id"`
		}
		json.Unmarshal(body, &b)
		tracker.Observe(b.EchoID) // the echo, before the response
		respondJSON(200, string(fixture))(w, r, body)
	}}
	s, _ := newUpstreamServer(t, u, nil)
	tracker = s.Echoes()
	rec := serve(s, request("POST", messagesPath("i", "s", 1)+"?wait=echo", `{"content":"hi"}`))
	if rec.Code != 200 || rec.Header().Get(headerEcho) != echoReceived {
		t.Errorf("%d %v", rec.Code, rec.Header())
	}
	if !bytes.Equal(rec.Body.Bytes(), fixture) {
		t.Errorf("Chatwoot's message not returned byte for byte: %s", rec.Body)
	}
}
