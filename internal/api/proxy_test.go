package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/relayhq/relay/internal/chatwoottest"
	"github.com/relayhq/relay/internal/fixtures"
)

func TestProxyPassThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		rec := e.do(request("GET", "/public/api/v1/inboxes/inbox-abc", ""))
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("inbox show: %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		if v := decode[map[string]any](t, rec); v["identifier"] != "inbox-abc" {
			t.Errorf("inbox show body = %v", v)
		}
		// Chatwoot's own 404 passes through, not the relay's error.
		rec = e.do(request("GET", "/public/api/v1/inboxes/unknown-inbox", ""))
		if rec.Code != 404 || strings.Contains(rec.Body.String(), `"code"`) {
			t.Errorf("unknown inbox: %d %s, want Chatwoot's 404", rec.Code, rec.Body)
		}
		if got := e.requests(chatwoottest.RouteInboxShow); got != 2 {
			t.Errorf("upstream inbox.show requests = %d, want 2", got)
		}
	})
}

func TestProxyForwardsRequest(t *testing.T) {
	u := &upstream{respond: func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/vnd.test")
		w.Header().Set("Set-Cookie", "_chatwoot_session=x")
		w.Header().Set("X-Request-Id", "req-1")
		w.WriteHeader(201)
		io.WriteString(w, "raw\x00bytes")
	}}
	s, _ := newUpstreamServer(t, u, nil)
	body := `{"typing_status":"on"}`
	req := request("POST", "/public/api/v1/inboxes/i/contacts/s/conversations/7/toggle_typing?a=1&subscribe=false&b=%2F&wait=", body,
		"Accept-Language", "de", "Cookie", "c=1")
	rec := serve(s, req)
	if rec.Code != 201 || rec.Body.String() != "raw\x00bytes" || rec.Header().Get("Content-Type") != "application/vnd.test" {
		t.Fatalf("response: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if rec.Header().Get("Set-Cookie") != "" || rec.Header().Get("X-Request-Id") != "req-1" {
		t.Errorf("response headers = %v", rec.Header())
	}
	reqs := u.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d upstream requests", len(reqs))
	}
	got := reqs[0]
	if got.Method != "POST" || got.Path != "/public/api/v1/inboxes/i/contacts/s/conversations/7/toggle_typing" {
		t.Errorf("upstream %s %s", got.Method, got.Path)
	}
	if got.Query != "a=1&b=%2F" {
		t.Errorf("upstream query = %q, want the relay's parameters removed and the rest as sent", got.Query)
	}
	if string(got.Body) != body || got.Header.Get("Content-Type") != "application/json" {
		t.Errorf("upstream body %q (%s)", got.Body, got.Header.Get("Content-Type"))
	}
	if got.Header.Get("Accept-Language") != "de" || got.Header.Get("Authorization") != "" || got.Header.Get("Cookie") != "" {
		t.Errorf("upstream headers = %v", got.Header)
	}
}

func TestProxyPathTraversal(t *testing.T) {
	u := &upstream{respond: respondJSON(200, `{}`)}
	s, _ := newUpstreamServer(t, u, nil)
	for _, p := range []string{
		"/public/api/v1/inboxes/../../../admin",
		"/public/api/v1/inboxes/%2e%2e/%2e%2e/api/v1/accounts",
		"/public/api/v1/inboxes/x%2F..%2F..%2Fadmin/contacts",
		"/public/api/v1/inboxes/x%5C..%5Cadmin",
		"/public/api/v1//inboxes/x",
		"/public/api/v1/./inboxes/x",
		"/public/api/v1/inboxes/x%00/contacts",
		"/public/api/v1/",
	} {
		wantError(t, serve(s, request("GET", p, "")), 400, CodeInvalid)
	}
	wantError(t, serve(s, request("GET", "/public/api/v1/inboxes/x?wait=echo", "")), 400, CodeInvalid)
	wantError(t, serve(s, request("GET", "/public/api/v1/inboxes/x/contacts/y?subscribe=maybe", "")), 400, CodeInvalid)
	if n := len(u.requests()); n != 0 {
		t.Errorf("%d upstream requests for refused paths", n)
	}
}

func TestProxyUpstreamFailures(t *testing.T) {
	t.Run("garbage passes through", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, nil)
			e.fake.SetFault(chatwoottest.AllRoutes, chatwoottest.Fault{Garbage: true})
			rec := e.do(request("GET", "/public/api/v1/inboxes/inbox-abc", ""))
			if rec.Code != 200 || rec.Body.String() != chatwoottest.GarbageBody {
				t.Errorf("garbage: %d %q", rec.Code, rec.Body)
			}
		})
	})
	t.Run("429 passes through", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, nil)
			e.fake.SetFault(chatwoottest.AllRoutes, chatwoottest.Fault{Status: 429})
			rec := e.do(request("GET", "/public/api/v1/inboxes/inbox-abc", ""))
			if rec.Code != 429 || rec.Body.String() != "Retry later\n" || rec.Header().Get("Content-Type") != "text/plain" {
				t.Errorf("429: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
		})
	})
	t.Run("500 passes through", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, nil)
			e.fake.SetFault(chatwoottest.AllRoutes, chatwoottest.Fault{Status: 500})
			rec := e.do(request("GET", "/public/api/v1/inboxes/inbox-abc", ""))
			if rec.Code != 500 || !strings.Contains(rec.Body.String(), "Internal Server Error") {
				t.Errorf("500: %d %q", rec.Code, rec.Body)
			}
		})
	})
	t.Run("slow past the timeout is 504", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, nil)
			e.fake.SetFault(chatwoottest.AllRoutes, chatwoottest.Fault{Delay: time.Hour})
			wantError(t, e.do(request("GET", "/public/api/v1/inboxes/inbox-abc", "")), 504, CodeUpstream, "inbox-abc")
		})
	})
	t.Run("down is 502", func(t *testing.T) {
		s, _ := newDownServer(t, nil)
		wantError(t, serve(s, request("GET", "/public/api/v1/inboxes/inbox-abc", "")), 502, CodeUpstream, "inbox-abc")
	})
}

// newDownServer returns a Server whose Chatwoot is a closed local port.
func newDownServer(t *testing.T, mod func(*Options)) (*Server, *fakeRegistry) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	reg := newFakeRegistry()
	opts := Options{Registry: reg, Chatwoot: newClient(t, "http://"+addr, nil), APITokens: []string{apiToken}, Store: openStore(t)}
	if mod != nil {
		mod(&opts)
	}
	return newServer(t, opts), reg
}

func TestProxyBodyLimits(t *testing.T) {
	u := &upstream{respond: respondJSON(200, `{}`)}
	s, _ := newUpstreamServer(t, u, func(o *Options) { o.MaxBodyBytes = 64; o.MaxMultipartBytes = 128 })
	big := `{"content":"` + strings.Repeat("x", 100) + `"}`
	wantError(t, serve(s, request("PATCH", "/public/api/v1/inboxes/i/contacts/s", big)), 413, CodeInvalid)

	// A chunked multipart body over the limit is cut off while streaming.
	mp, ct := multipartBody(t, map[string]string{"content": strings.Repeat("y", 300)}, nil)
	req := request("POST", "/public/api/v1/inboxes/i/contacts/s/conversations/1/toggle_status", "", "Content-Type", ct)
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(mp)), -1
	wantError(t, serve(s, req), 413, CodeInvalid)
	for _, r := range u.requests() {
		if bytes.Contains(r.Body, []byte(strings.Repeat("y", 300))) {
			t.Error("upstream received the whole oversized body")
		}
	}
}

func TestContactCreateRegisters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		rec := e.do(request("POST", "/public/api/v1/inboxes/inbox-abc/contacts", `{"name":"Jane","source_id":"src-jane"}`))
		if rec.Code != 200 {
			t.Fatalf("create: %d %s", rec.Code, rec.Body)
		}
		var c struct {
			SourceID    string `json:"source_id"`
			PubsubToken string `json:"pubsub_token"`
			ID          int64  `json:"id"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil || c.PubsubToken == "" {
			t.Fatalf("Chatwoot's contact not returned unchanged: %s", rec.Body)
		}
		if got := rec.Header().Get(headerSubscription); got != fakeID(c.PubsubToken) {
			t.Errorf("Relay-Subscription = %q, want %q", got, fakeID(c.PubsubToken))
		}
		want := Registration{Token: c.PubsubToken, InboxIdentifier: "inbox-abc", SourceID: "src-jane", ContactID: itoa(c.ID), Origin: OriginProxy}
		if regs := e.reg.registrations(); len(regs) != 1 || regs[0] != want {
			t.Errorf("registrations = %+v, want %+v", regs, want)
		}

		// Show registers the same token again (idempotent in the registry).
		rec = e.do(request("GET", "/public/api/v1/inboxes/inbox-abc/contacts/src-jane", ""))
		if rec.Code != 200 || rec.Header().Get(headerSubscription) != fakeID(c.PubsubToken) {
			t.Errorf("show: %d %v", rec.Code, rec.Header())
		}
		if n := len(e.reg.registrations()); n != 2 {
			t.Errorf("%d registrations after show, want 2", n)
		}

		// subscribe=false: forwarded without the parameter, not registered.
		rec = e.do(request("POST", "/public/api/v1/inboxes/inbox-abc/contacts?subscribe=false", `{"name":"Bob"}`))
		if rec.Code != 200 || rec.Header().Get(headerSubscription) != "" || rec.Header().Get(headerSubscriptionError) != "" {
			t.Errorf("subscribe=false: %d %v", rec.Code, rec.Header())
		}
		if n := len(e.reg.registrations()); n != 2 {
			t.Errorf("subscribe=false registered: %d registrations", n)
		}
		// Chatwoot's 404 for an unknown contact: passed through, nothing registered.
		rec = e.do(request("GET", "/public/api/v1/inboxes/inbox-abc/contacts/nobody", ""))
		if rec.Code != 404 || rec.Header().Get(headerSubscriptionError) != "" || len(e.reg.registrations()) != 2 {
			t.Errorf("unknown contact: %d %v", rec.Code, rec.Header())
		}
	})
}

func TestContactCreateRegistryFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		e.reg.setErr(errBoom)
		rec := e.do(request("POST", "/public/api/v1/inboxes/inbox-abc/contacts", `{"name":"Jane"}`))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), "pubsub_token") {
			t.Fatalf("Chatwoot's answer lost: %d %s", rec.Code, rec.Body)
		}
		if got := rec.Header().Get(headerSubscriptionError); got != CodeInternal {
			t.Errorf("Relay-Subscription-Error = %q, want %q", got, CodeInternal)
		}
		if rec.Header().Get(headerSubscription) != "" {
			t.Error("Relay-Subscription set although registration failed")
		}
		if n := e.requests(chatwoottest.RouteContactCreate); n != 1 {
			t.Errorf("contact create sent %d times, want 1", n)
		}
	})
}

func TestContactCreateGarbage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		e.fake.SetFault(chatwoottest.RouteContactCreate, chatwoottest.Fault{Garbage: true})
		rec := e.do(request("POST", "/public/api/v1/inboxes/inbox-abc/contacts", `{"name":"Jane"}`))
		if rec.Code != 200 || rec.Body.String() != chatwoottest.GarbageBody {
			t.Fatalf("garbage not returned: %d %q", rec.Code, rec.Body)
		}
		if got := rec.Header().Get(headerSubscriptionError); got != subErrInvalidResponse {
			t.Errorf("Relay-Subscription-Error = %q", got)
		}
		if n := e.reg.callCount(); n != 0 {
			t.Errorf("registry called %d times", n)
		}
	})
}

func TestContactCreateFixture(t *testing.T) {
	fixture := fixtures.Read(t, "api/contact_create.json")
	u := &upstream{respond: respondJSON(200, string(fixture))}
	s, reg := newUpstreamServer(t, u, nil)
	rec := serve(s, request("POST", "/public/api/v1/inboxes/inbox-abc/contacts", `{"name":"Jane Customer"}`))
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), fixture) {
		t.Fatalf("fixture not returned byte for byte: %d %s", rec.Code, rec.Body)
	}
	want := Registration{Token: "os7FhRoFVZEMeCwQpWaJFUxv", InboxIdentifier: "inbox-abc",
		SourceID: "ba852f78-ecf7-4770-8128-e6cc15f7d7cc", ContactID: "1", Origin: OriginProxy}
	if regs := reg.registrations(); len(regs) != 1 || regs[0] != want {
		t.Errorf("registrations = %+v, want %+v", regs, want)
	}
}

func TestIdentifierHash(t *testing.T) {
	hash := func(id string) string { return chatwootHash("hmac-secret", id) }
	tests := []struct {
		name, method, target, contentType, body string
		wantBody, wantQuery                     string
	}{
		{"json create", "POST", "/contacts", "application/json",
			`{"identifier":"user-1", "custom_attributes":{"plan":"pro","n":1.50}}`,
			`{"identifier":"user-1","custom_attributes":{"plan":"pro","n":1.50},"identifier_hash":"` + hash("user-1") + `"}`, ""},
		{"json integer identifier", "POST", "/contacts", "application/json", `{"identifier":42}`,
			`{"identifier":42,"identifier_hash":"` + hash("42") + `"}`, ""},
		{"json blank hash replaced", "PATCH", "/contacts/src-1", "application/json", `{"identifier":"u","identifier_hash":""}`,
			`{"identifier":"u","identifier_hash":"` + hash("u") + `"}`, ""},
		{"json hash kept", "POST", "/contacts", "application/json", `{"identifier":"u", "identifier_hash":"abc"}`,
			`{"identifier":"u", "identifier_hash":"abc"}`, ""},
		{"json without identifier unchanged", "POST", "/contacts", "application/json", `{ "name" : "x" }`,
			`{ "name" : "x" }`, ""},
		{"json float identifier left alone", "POST", "/contacts", "application/json", `{"identifier":1.5}`,
			`{"identifier":1.5}`, ""},
		{"form update", "PUT", "/contacts/src-1", "application/x-www-form-urlencoded", "name=x&identifier=user+2",
			"name=x&identifier=user+2&identifier_hash=" + hash("user 2"), ""},
		{"show query", "GET", "/contacts/src-1?identifier=user-3", "", "", "", "identifier=user-3&identifier_hash=" + hash("user-3")},
		{"show query with hash kept", "GET", "/contacts/src-1?identifier=u&identifier_hash=abc", "", "", "", "identifier=u&identifier_hash=abc"},
		{"other inbox unchanged", "POST", "/contacts", "application/json", `{"identifier":"u"}`, `{"identifier":"u"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &upstream{respond: respondJSON(200, `{"pubsub_token":"tok","source_id":"src","id":1}`)}
			s, _ := newUpstreamServer(t, u, func(o *Options) {
				o.InboxHMACTokens = map[string]string{"inbox-abc": "hmac-secret"}
			})
			inbox := "inbox-abc"
			if tt.name == "other inbox unchanged" {
				inbox = "inbox-other"
			}
			req := request(tt.method, "/public/api/v1/inboxes/"+inbox+tt.target, tt.body)
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if rec := serve(s, req); rec.Code != 200 {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			got := u.requests()[0]
			if string(got.Body) != tt.wantBody || got.Query != tt.wantQuery {
				t.Errorf("upstream body %q query %q\nwant body %q query %q", got.Body, got.Query, tt.wantBody, tt.wantQuery)
			}
			if tt.contentType != "" && got.Header.Get("Content-Type") != tt.contentType {
				t.Errorf("Content-Type %q", got.Header.Get("Content-Type"))
			}
		})
	}
}

func TestIdentifierHashAgainstChatwoot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.InboxHMACTokens = map[string]string{"inbox-mandatory": "mandatory-secret"} })
		if _, err := e.fake.AddInbox(chatwoottest.InboxConfig{Identifier: "inbox-mandatory", HMACToken: "mandatory-secret", HMACMandatory: true}); err != nil {
			t.Fatal(err)
		}
		rec := e.do(request("POST", "/public/api/v1/inboxes/inbox-mandatory/contacts", `{"identifier":"user-9","source_id":"src-9"}`))
		if rec.Code != 200 {
			t.Fatalf("create with relay-computed hash: %d %s", rec.Code, rec.Body)
		}
		rec = e.do(request("GET", "/public/api/v1/inboxes/inbox-mandatory/contacts/src-9?identifier=user-9", ""))
		if rec.Code != 200 {
			t.Fatalf("show with relay-computed hash: %d %s", rec.Code, rec.Body)
		}
		// A wrong hash from the client is kept, and Chatwoot's 500 passes through.
		rec = e.do(request("GET", "/public/api/v1/inboxes/inbox-mandatory/contacts/src-9?identifier=user-9&identifier_hash=00", ""))
		if rec.Code != 500 {
			t.Errorf("wrong client hash: %d, want Chatwoot's 500", rec.Code)
		}
	})
}

func TestContactBadBodies(t *testing.T) {
	u := &upstream{respond: respondJSON(200, `{}`)}
	s, _ := newUpstreamServer(t, u, func(o *Options) { o.InboxHMACTokens = map[string]string{"inbox-abc": "k"} })
	for _, body := range []string{`{"identifier":`, `["identifier"]`, `{"a":1} x`} {
		wantError(t, serve(s, request("POST", "/public/api/v1/inboxes/inbox-abc/contacts", body)), 400, CodeInvalid)
	}
	req := request("POST", "/public/api/v1/inboxes/inbox-abc/contacts", "a=%zz", "Content-Type", "application/x-www-form-urlencoded")
	wantError(t, serve(s, req), 400, CodeInvalid)
	if n := len(u.requests()); n != 0 {
		t.Errorf("%d upstream requests for bad bodies", n)
	}
}

// TestProxyRouteSpellings sends the spellings Rails routes alike: a ".json"
// format suffix and a trailing slash get the relay's handling, not a 400 or
// a plain forward.
func TestProxyRouteSpellings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, nil)
		path, ci := e.conversation()
		contact := "/public/api/v1/inboxes/" + e.inbox.Identifier + "/contacts/" + ci.SourceID
		for _, target := range []string{contact + "/", contact + ".json"} {
			rec := e.do(request("GET", target, ""))
			if rec.Code != 200 || rec.Header().Get(headerSubscription) == "" {
				t.Errorf("GET %s: %d %s, subscription %q", strings.Replace(target, ci.SourceID, "SRC", 1),
					rec.Code, rec.Body, rec.Header().Get(headerSubscription))
			}
		}
		created := e.do(request("POST", "/public/api/v1/inboxes/"+e.inbox.Identifier+"/contacts.json", `{"name":"x"}`))
		if created.Code != 200 || created.Header().Get(headerSubscription) == "" {
			t.Errorf("contact create .json: %d %s, subscription %q", created.Code, created.Body, created.Header().Get(headerSubscription))
		}
		for _, target := range []string{path + ".json", path + "/", path + ".json?wait=echo"} {
			key := "key " + target
			first := e.do(request("POST", target, `{"content":"once"}`, headerIdempotencyKey, key))
			second := e.do(request("POST", target, `{"content":"once"}`, headerIdempotencyKey, key))
			if first.Code != 200 || first.Header().Get(headerEchoID) == "" || second.Header().Get(headerReplay) != "true" {
				t.Errorf("POST %s: %d echo %q, retry replay %q", target, first.Code,
					first.Header().Get(headerEchoID), second.Header().Get(headerReplay))
			}
		}
		if n := e.messageCount(); n != 3 {
			t.Errorf("%d messages for three keys, want 3", n)
		}
		for _, m := range e.fake.AllMessages() {
			if m.EchoID == "" {
				t.Errorf("message %d posted without an echo_id", m.ID)
			}
		}
	})
}

// TestProxyForwardsFormatSuffix: the suffix reaches Chatwoot as sent (it
// answers the same), a trailing slash does not.
func TestProxyForwardsFormatSuffix(t *testing.T) {
	u := &upstream{respond: respondJSON(200, `{"id":1}`)}
	s, _ := newUpstreamServer(t, u, nil)
	serve(s, request("POST", "/public/api/v1/inboxes/i/contacts/s/conversations/7/messages.json", `{"content":"x"}`))
	serve(s, request("GET", "/public/api/v1/inboxes/i/contacts/s/conversations/", ""))
	reqs := u.requests()
	if len(reqs) != 2 || reqs[0].Path != "/public/api/v1/inboxes/i/contacts/s/conversations/7/messages.json" ||
		reqs[1].Path != "/public/api/v1/inboxes/i/contacts/s/conversations" {
		t.Fatalf("upstream requests = %+v", reqs)
	}
	if !bytes.Contains(reqs[0].Body, []byte(`"echo_id"`)) {
		t.Errorf("message create .json forwarded without echo_id: %s", reqs[0].Body)
	}
}

// TestProxyErrorShape: errors the relay answers itself on proxied routes
// have Chatwoot's shape (clients parse them); the /v1 API keeps its own.
func TestProxyErrorShape(t *testing.T) {
	s, _ := newDownServer(t, nil)
	path := messagesPath("inbox-abc", "src-1", 1)
	var want map[string]any // Chatwoot's own 404
	if err := json.Unmarshal(fixtures.Read(t, "api/notfound.json"), &want); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		req    *http.Request
		status int
		code   string
		body   string
	}{
		{"malformed JSON", request("POST", path, `{"content":`), 400, CodeInvalid, `{"status":400,"error":"Bad Request"}`},
		{"oversized", request("POST", path, `{"content":"`+strings.Repeat("x", 2<<20)+`"}`), 413, CodeInvalid, `{"status":413,"error":"Payload Too Large"}`},
		{"unreachable", request("GET", "/public/api/v1/inboxes/inbox-abc", ""), 502, CodeUpstream, `{"status":502,"error":"Bad Gateway"}`},
		{"no token", httptest.NewRequest("GET", "/public/api/v1/inboxes/inbox-abc", nil), 401, CodeUnauthorized, `{"status":401,"error":"Unauthorized"}`},
	}
	for _, tt := range tests {
		rec := serve(s, tt.req)
		wantError(t, rec, tt.status, tt.code, "src-1", "inbox-abc")
		if rec.Body.String() != tt.body {
			t.Errorf("%s: body %s, want %s", tt.name, rec.Body, tt.body)
		}
		var got map[string]any
		json.Unmarshal(rec.Body.Bytes(), &got)
		if len(got) != len(want) || got["status"] == nil || got["error"] == nil {
			t.Errorf("%s: %v does not have the members of Chatwoot's %v", tt.name, got, want)
		}
	}
	wantError(t, serve(s, request("POST", "/v1/subscriptions", `{`)), 400, CodeInvalid)
}

// TestIdentifierHashMultipart: a multipart contact create (e.g. with an
// avatar) on an HMAC-mandatory inbox gets identifier_hash like JSON and
// form bodies; the fake Chatwoot refuses it without.
func TestIdentifierHashMultipart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.InboxHMACTokens = map[string]string{"inbox-mandatory": "mandatory-secret"} })
		if _, err := e.fake.AddInbox(chatwoottest.InboxConfig{Identifier: "inbox-mandatory", HMACToken: "mandatory-secret", HMACMandatory: true}); err != nil {
			t.Fatal(err)
		}
		create := "/public/api/v1/inboxes/inbox-mandatory/contacts"
		body, ct := multipartBody(t, map[string]string{"identifier": "user-mp", "name": "Avatar Person"}, map[string]string{"avatar.png": "PNG"})
		rec := e.do(request("POST", create, string(body), "Content-Type", ct))
		if rec.Code != 200 || rec.Header().Get(headerSubscription) == "" {
			t.Fatalf("multipart create with relay-computed hash: %d %s", rec.Code, rec.Body)
		}
		// A hash sent by the client is kept as sent: a wrong one fails at Chatwoot.
		body, ct = multipartBody(t, map[string]string{"identifier": "user-mp", "identifier_hash": "00"}, nil)
		if rec := e.do(request("POST", create, string(body), "Content-Type", ct)); rec.Code != 500 {
			t.Errorf("wrong client hash: %d %s, want Chatwoot's 500", rec.Code, rec.Body)
		}
		// An oversized identifier is refused before Chatwoot gets a whole body.
		body, ct = multipartBody(t, map[string]string{"identifier": strings.Repeat("i", 5<<10)}, nil)
		wantError(t, e.do(request("POST", create, string(body), "Content-Type", ct)), 400, CodeInvalid)
		if n := len(e.reg.registrations()); n != 1 {
			t.Errorf("%d contacts registered, want 1", n)
		}
	})
}

// TestIdempotencyKeyOtherRoutes: an Idempotency-Key on a proxied request
// the relay does not treat as a message create (another route or method, a
// format suffix Rails may still route to the create) is refused with a
// Chatwoot-shaped 400, never forwarded without the protection asked for.
func TestIdempotencyKeyOtherRoutes(t *testing.T) {
	u := &upstream{respond: respondJSON(200, `{}`)}
	s, _ := newUpstreamServer(t, u, nil)
	msgs := messagesPath("inbox-abc", "src-1", 1)
	for _, tt := range []struct{ method, target string }{
		{"POST", msgs + ".xml"},
		{"POST", msgs + ".JSON"},
		{"GET", msgs},
		{"PATCH", msgs + "/5"},
		{"POST", "/public/api/v1/inboxes/inbox-abc/contacts"},
		{"POST", "/public/api/v1/inboxes/inbox-abc/contacts/src-1/conversations"},
	} {
		rec := serve(s, request(tt.method, tt.target, `{"content":"x"}`, headerIdempotencyKey, "k"))
		wantError(t, rec, 400, CodeInvalid, "src-1", "inbox-abc")
	}
	if n := len(u.requests()); n != 0 {
		t.Errorf("%d requests forwarded, want none", n)
	}
	if rec := serve(s, request("POST", msgs+".json", `{"content":"x"}`, headerIdempotencyKey, "k")); rec.Code != 200 {
		t.Errorf("message create with .json: %d %s", rec.Code, rec.Body)
	}
}
