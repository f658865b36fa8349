package api

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestScopes: a token reaches only the routes of its scopes, and a token
// restricted to inboxes only those inboxes' proxied paths.
func TestScopes(t *testing.T) {
	const (
		adminTok      = "tok-admin"
		proxyTok      = "tok-proxy"
		inboxTok      = "tok-inbox"
		inboxA        = "inboxA1"
		inboxB        = "inboxB2"
		contactCreate = `{"identifier":"user-1"}`
	)
	up := &upstream{respond: respondJSON(200, `{"source_id":"s1","pubsub_token":"pt1"}`)}
	s, _ := newUpstreamServer(t, up, func(o *Options) {
		o.APITokens = []string{apiToken}
		o.Tokens = []Token{
			{Value: adminTok, Scopes: []Scope{ScopeAdmin}},
			{Value: proxyTok, Scopes: []Scope{ScopeProxy}},
			{Value: inboxTok, Scopes: []Scope{ScopeProxy}, Inboxes: []string{inboxA}},
		}
		o.InboxHMACTokens = map[string]string{inboxA: "hmac-a", inboxB: "hmac-b"}
	})
	tests := []struct {
		token, method, path string
		want                int
		scope               string // named in the 403 message
	}{
		{apiToken, "GET", "/v1/subscriptions", 200, ""},
		{apiToken, "POST", "/public/api/v1/inboxes/" + inboxB + "/contacts", 200, ""},
		{apiToken, "GET", "/public/api/v1/csat_survey/u1", 200, ""},
		{adminTok, "GET", "/v1/subscriptions", 200, ""},
		{adminTok, "DELETE", "/v1/subscriptions/sub_x", 404, ""},
		{adminTok, "POST", "/public/api/v1/inboxes/" + inboxA + "/contacts", 403, "the proxy scope"},
		{adminTok, "GET", "/public/api/v1/inboxes/" + inboxA, 403, "the proxy scope"},
		{proxyTok, "GET", "/v1/subscriptions", 403, "the admin scope"},
		{proxyTok, "DELETE", "/v1/subscriptions/sub_x", 403, "the admin scope"},
		{proxyTok, "POST", "/v1/subscriptions", 403, "the admin scope"},
		{proxyTok, "POST", "/public/api/v1/inboxes/" + inboxB + "/contacts", 200, ""},
		{proxyTok, "GET", "/public/api/v1/csat_survey/u1", 200, ""},
		{inboxTok, "GET", "/v1/subscriptions", 403, "the admin scope"},
		{inboxTok, "POST", "/public/api/v1/inboxes/" + inboxA + "/contacts", 200, ""},
		{inboxTok, "GET", "/public/api/v1/inboxes/" + inboxA, 200, ""},
		{inboxTok, "GET", "/public/api/v1/inboxes/%69nboxA1/contacts/s1", 200, ""}, // Chatwoot decodes it to inboxA1
		{inboxTok, "POST", "/public/api/v1/inboxes/" + inboxB + "/contacts", 403, "inboxes"},
		{inboxTok, "GET", "/public/api/v1/inboxes/" + inboxB + "/contacts/s1", 403, "inboxes"},
		{inboxTok, "GET", "/public/api/v1/inboxes/" + inboxA + ".json", 403, "inboxes"},
		{inboxTok, "GET", "/public/api/v1/inboxes/" + inboxA + "x/contacts/s1", 403, "inboxes"},
		{inboxTok, "GET", "/public/api/v1/inboxes/" + strings.ToLower(inboxA) + "/contacts/s1", 403, "inboxes"},
		{inboxTok, "GET", "/public/api/v1/csat_survey/u1", 403, "inboxes"},
		{inboxTok, "GET", "/public/api/v1/inboxes", 403, "inboxes"},
	}
	for _, tt := range tests {
		before := len(up.requests())
		body := ""
		if tt.method == "POST" {
			body = contactCreate
			if strings.HasPrefix(tt.path, "/v1/") {
				body = `{"pubsub_token":"pt9"}`
			}
		}
		req := request(tt.method, tt.path, body, "Authorization", "Bearer "+tt.token)
		rec := serve(s, req)
		if tt.want != 403 {
			if rec.Code != tt.want {
				t.Errorf("%s %s %s = %d, want %d: %s", tt.token, tt.method, tt.path, rec.Code, tt.want, rec.Body)
			}
			continue
		}
		t.Run(tt.token+" "+tt.method+" "+tt.path, func(t *testing.T) {
			wantError(t, rec, 403, CodeForbidden, tt.token, inboxA, inboxB, "hmac")
			// Proxied routes carry the relay's message in a header, under
			// Chatwoot's error body.
			msg := rec.Body.String() + rec.Header().Get(headerErrorMessage)
			if !strings.Contains(msg, tt.scope) {
				t.Errorf("403 does not name %s: %s", tt.scope, msg)
			}
			if rec.Header().Get("WWW-Authenticate") != "" {
				t.Error("403 with WWW-Authenticate: another token would not help the client")
			}
			if len(up.requests()) != before {
				t.Error("a refused request reached Chatwoot")
			}
		})
	}
}

// TestIdentifierHashNeedsTheInbox: a token restricted to one inbox cannot
// have the relay compute identifier_hash with another inbox's HMAC token.
func TestIdentifierHashNeedsTheInbox(t *testing.T) {
	up := &upstream{respond: respondJSON(200, `{"source_id":"s1","pubsub_token":"pt1"}`)}
	s, reg := newUpstreamServer(t, up, func(o *Options) {
		o.APITokens = nil
		o.Tokens = []Token{{Value: "tok-inbox", Scopes: []Scope{ScopeProxy}, Inboxes: []string{"inboxA"}}}
		o.InboxHMACTokens = map[string]string{"inboxA": "hmac-a", "inboxB": "hmac-b"}
	})
	for _, call := range [][2]string{{"POST", "/public/api/v1/inboxes/inboxB/contacts"}, {"PATCH", "/public/api/v1/inboxes/inboxB/contacts/s1"}} {
		rec := serve(s, request(call[0], call[1], `{"identifier":"user-1"}`, "Authorization", "Bearer tok-inbox"))
		wantError(t, rec, 403, CodeForbidden, "tok-inbox", "inboxB", "hmac-b")
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("%d requests reached Chatwoot, want none", n)
	}
	if n := len(reg.registrations()); n != 0 {
		t.Errorf("%d registrations, want none", n)
	}
	rec := serve(s, request("POST", "/public/api/v1/inboxes/inboxA/contacts", `{"identifier":"user-1"}`, "Authorization", "Bearer tok-inbox"))
	if rec.Code != 200 || !strings.Contains(string(up.requests()[0].Body), chatwootHash("hmac-a", "user-1")) {
		t.Errorf("own inbox: %d, body sent %s", rec.Code, up.requests()[0].Body)
	}
}

// TestTokenOptions: New refuses bad scoped tokens without quoting them.
func TestTokenOptions(t *testing.T) {
	const secret = "s3cret-token-value"
	tests := []struct {
		name   string
		plain  []string
		tokens []Token
		want   string
	}{
		{"no scope", nil, []Token{{Value: secret}}, "no scope"},
		{"unknown scope", nil, []Token{{Value: secret, Scopes: []Scope{"root"}}}, "unknown"},
		{"scope in upper case", nil, []Token{{Value: secret, Scopes: []Scope{"ADMIN"}}}, "unknown"},
		{"empty token", nil, []Token{{Scopes: []Scope{ScopeAdmin}}}, "empty"},
		{"token with spaces", nil, []Token{{Value: " " + secret, Scopes: []Scope{ScopeAdmin}}}, "white space"},
		{"inboxes without proxy", nil, []Token{{Value: secret, Scopes: []Scope{ScopeAdmin}, Inboxes: []string{"inboxA"}}}, "does not have"},
		{"inbox with a dot", nil, []Token{{Value: secret, Scopes: []Scope{ScopeProxy}, Inboxes: []string{"inboxA.json"}}}, "inbox 1"},
		{"empty inbox", nil, []Token{{Value: secret, Scopes: []Scope{ScopeProxy}, Inboxes: []string{""}}}, "inbox 1"},
		{"scoped twice", nil, []Token{{Value: secret, Scopes: []Scope{ScopeAdmin}}, {Value: secret, Scopes: []Scope{ScopeProxy}}}, "token 2: the same token"},
		{"plain and scoped", []string{secret}, []Token{{Value: secret, Scopes: []Scope{ScopeProxy}}}, "token 1: the same token"},
	}
	for _, tt := range tests {
		_, err := New(Options{Registry: newFakeRegistry(), Chatwoot: newClient(t, "http://x", nil), APITokens: tt.plain, Tokens: tt.tokens})
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "inboxA") {
			t.Errorf("%s: New = %v, want an error with %q and no secret", tt.name, err, tt.want)
		}
	}
	newServer(t, Options{APITokens: []string{"a", "a", "", "b"}}) // plain duplicates stay accepted
}

func TestTokenLogValue(t *testing.T) {
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("t", "token", Token{Value: "s3cret", Scopes: []Scope{ScopeProxy}, Inboxes: []string{"inboxA"}})
	if out := buf.String(); strings.Contains(out, "s3cret") || strings.Contains(out, "inboxA") || !strings.Contains(out, "proxy") {
		t.Errorf("log: %s", out)
	}
}
