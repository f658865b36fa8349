package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/relayhq/relay/internal/chatwoottest"
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

		// Another key, or the same key on another conversation, sends again.
		send("key-2", path)
		path2, _ := e.conversation()
		send("key-1", path2)
		if n := e.messageCount(); n != 3 {
			t.Errorf("%d messages, want 3", n)
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

func TestIdempotencyOutcomes(t *testing.T) {
	tests := []struct {
		name      string
		fault     chatwoottest.Fault
		status    int
		resend    bool // a retry with the same key posts again
		wantCodes string
	}{
		// Nothing was created: the key is released and a retry sends.
		{"429", chatwoottest.Fault{Status: 429, Count: 1}, 429, true, ""},
		{"404", chatwoottest.Fault{Status: 404, Count: 1}, 404, true, ""},
		// The message may exist: the first answer is replayed.
		{"500", chatwoottest.Fault{Status: 500, Count: 1}, 500, false, ""},
		{"timeout", chatwoottest.Fault{Delay: time.Hour, Count: 1}, 504, false, CodeUpstream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, nil)
				path, ci := e.conversation()
				e.fake.SetFault(chatwoottest.RouteMessageCreate, tt.fault)
				first := e.do(request("POST", path, `{"content":"x"}`, headerIdempotencyKey, "k"))
				if first.Code != tt.status {
					t.Fatalf("first: %d %s, want %d", first.Code, first.Body, tt.status)
				}
				if tt.wantCodes != "" {
					wantError(t, first, tt.status, tt.wantCodes, ci.SourceID)
				}
				second := e.do(request("POST", path, `{"content":"x"}`, headerIdempotencyKey, "k"))
				upstream := e.requests(chatwoottest.RouteMessageCreate)
				if tt.resend {
					if second.Code != 200 || upstream != 2 || second.Header().Get(headerReplay) != "" {
						t.Errorf("retry: %d, %d upstream requests, replay %q; want a fresh send",
							second.Code, upstream, second.Header().Get(headerReplay))
					}
					return
				}
				if second.Code != tt.status || upstream != 1 || second.Header().Get(headerReplay) != "true" ||
					second.Body.String() != first.Body.String() {
					t.Errorf("retry: %d %s, %d upstream requests; want the first answer replayed", second.Code, second.Body, upstream)
				}
				if first.Header().Get(headerEchoID) == "" || second.Header().Get(headerEchoID) != first.Header().Get(headerEchoID) {
					t.Errorf("echo ids %q, %q", first.Header().Get(headerEchoID), second.Header().Get(headerEchoID))
				}
			})
		})
	}
}

func TestIdempotencyChatwootDown(t *testing.T) {
	s, _ := newDownServer(t, nil)
	path := messagesPath("inbox-abc", "src-1", 1)
	wantError(t, serve(s, request("POST", path, `{"content":"x"}`, headerIdempotencyKey, "k")), 502, CodeUpstream, "src-1")
	// Connection refused: nothing was sent, so the key is free again.
	state, _, err := s.opts.Store.ReserveIdempotency(context.Background(), idempotencyStoreKey(path, "k"), time.Minute)
	if err != nil || state != store.IdempotencyReserved {
		t.Errorf("key after a refused connection: %v %v, want reserved (released)", state, err)
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

func TestIdempotencyStoreKeyHidesPath(t *testing.T) {
	k := idempotencyStoreKey("/inboxes/inbox-abc/contacts/secret-source/conversations/1/messages", "client-key")
	if strings.Contains(k, "secret-source") || strings.Contains(k, "inbox-abc") || strings.Contains(k, "client-key") {
		t.Errorf("store key %q holds the path or key", k)
	}
	if k == idempotencyStoreKey("/inboxes/inbox-abc/contacts/other/conversations/1/messages", "client-key") {
		t.Error("same store key for two paths")
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
	fixture := readFixture(t, "message_create.json")
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
