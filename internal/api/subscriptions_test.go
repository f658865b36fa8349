package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/store"
)

const token = "os7FhRoFVZEMeCwQpWaJFUxv"

func TestCreateSubscription(t *testing.T) {
	reg := newFakeRegistry()
	s := newServer(t, Options{Registry: reg, APITokens: []string{apiToken}})
	body := `{"pubsub_token":"` + token + `","inbox_identifier":"inbox-abc","contact_identifier":"src-1"}`

	rec := serve(s, request("POST", "/v1/subscriptions", body))
	if rec.Code != http.StatusCreated {
		t.Fatalf("first register: %d %s", rec.Code, rec.Body)
	}
	sub := decode[Subscription](t, rec)
	if sub.ID != fakeID(token) || !sub.CatchUp || sub.Origin != OriginAPI {
		t.Errorf("subscription = %+v", sub)
	}
	if loc := rec.Header().Get("Location"); loc != "/v1/subscriptions/"+sub.ID {
		t.Errorf("Location = %q", loc)
	}
	if strings.Contains(rec.Body.String(), token) || strings.Contains(rec.Body.String(), "src-1") {
		t.Errorf("response %s returns a credential", rec.Body)
	}
	want := Registration{Token: token, InboxIdentifier: "inbox-abc", SourceID: "src-1", Origin: OriginAPI}
	if regs := reg.registrations(); len(regs) != 1 || regs[0] != want {
		t.Errorf("registrations = %+v, want %+v", regs, want)
	}

	rec = serve(s, request("POST", "/v1/subscriptions", body))
	if rec.Code != http.StatusOK || decode[Subscription](t, rec).ID != sub.ID {
		t.Fatalf("second register: %d %s, want 200 with the same id", rec.Code, rec.Body)
	}
}

func TestCreateSubscriptionBadInput(t *testing.T) {
	big := `{"pubsub_token":"` + strings.Repeat("a", 200) + `","inbox_identifier":"` + strings.Repeat("b", 2<<20) + `"}`
	tests := []struct {
		name, body, contentType string
		status                  int
	}{
		{"malformed JSON", `{"pubsub_token":`, "application/json", 400},
		{"syntax error", `{"pubsub_token" "x"}`, "application/json", 400},
		{"unknown field", `{"pubsub_token":"` + token + `","extra":1}`, "application/json", 400},
		{"missing token", `{"inbox_identifier":"inbox-abc"}`, "application/json", 400},
		{"empty token", `{"pubsub_token":""}`, "application/json", 400},
		{"wrong type", `{"pubsub_token":42}`, "application/json", 400},
		{"array", `[{"pubsub_token":"` + token + `"}]`, "application/json", 400},
		{"trailing data", `{"pubsub_token":"` + token + `"} {}`, "application/json", 400},
		{"empty body", ``, "application/json", 400},
		{"token with spaces", `{"pubsub_token":"a b"}`, "application/json", 400},
		{"contact without inbox", `{"pubsub_token":"` + token + `","contact_identifier":"src-1"}`, "application/json", 400},
		{"form body", `pubsub_token=` + token, "application/x-www-form-urlencoded", 415},
		{"no content type", `{"pubsub_token":"` + token + `"}`, "", 415},
		{"oversized", big, "application/json", 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := newFakeRegistry()
			s := newServer(t, Options{Registry: reg, APITokens: []string{apiToken}})
			req := request("POST", "/v1/subscriptions", tt.body)
			req.Header.Set("Content-Type", tt.contentType)
			if tt.contentType == "" {
				req.Header.Del("Content-Type")
			}
			wantError(t, serve(s, req), tt.status, CodeInvalid, token)
			if n := reg.callCount(); n != 0 {
				t.Errorf("registry called %d times for a bad request", n)
			}
		})
	}
}

func TestSubscriptionRegistryErrors(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{store.ErrClosed, 503, CodeUnavailable},
		{fmt.Errorf("%w: registry full", ErrUnavailable), 503, CodeUnavailable},
		{fmt.Errorf("%w: bad inbox", store.ErrInvalid), 400, CodeInvalid},
		{fmt.Errorf("%w: the relay holds its maximum of 2 subscriptions", ErrLimit), 507, CodeLimit},
		{fmt.Errorf("registry: token %s broke", token), 500, CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			reg := newFakeRegistry()
			reg.setErr(tt.err)
			s := newServer(t, Options{Registry: reg, APITokens: []string{apiToken}})
			wantError(t, serve(s, request("POST", "/v1/subscriptions", `{"pubsub_token":"`+token+`"}`)), tt.status, tt.code, token)
			wantError(t, serve(s, request("GET", "/v1/subscriptions", "")), tt.status, tt.code)
		})
	}
}

func TestListSubscriptions(t *testing.T) {
	reg := newFakeRegistry()
	s := newServer(t, Options{Registry: reg, APITokens: []string{apiToken}})

	rec := serve(s, request("GET", "/v1/subscriptions", ""))
	if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"subscriptions":[],"next_cursor":""}` {
		t.Fatalf("empty list: %d %s", rec.Code, rec.Body)
	}
	for i := range 5 {
		serve(s, request("POST", "/v1/subscriptions", fmt.Sprintf(`{"pubsub_token":"tok%d"}`, i)))
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		rec := serve(s, request("GET", "/v1/subscriptions?limit=2&cursor="+cursor, ""))
		if rec.Code != 200 {
			t.Fatalf("list: %d %s", rec.Code, rec.Body)
		}
		page := decode[subscriptionList](t, rec)
		if len(page.Subscriptions) > 2 {
			t.Fatalf("page of %d with limit 2", len(page.Subscriptions))
		}
		for _, sub := range page.Subscriptions {
			got = append(got, sub.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(got) != 5 {
		t.Errorf("listed %d subscriptions, want 5: %v", len(got), got)
	}
	for _, state := range []string{StateConfirmed, StateParked} {
		rec = serve(s, request("GET", "/v1/subscriptions?state="+state, ""))
		if page := decode[subscriptionList](t, rec); rec.Code != 200 || len(page.Subscriptions) != 0 {
			t.Errorf("state=%s: %d, listed %d pending subscriptions", state, rec.Code, len(page.Subscriptions))
		}
	}
	for _, q := range []string{"state=gone", "limit=0", "limit=1001", "limit=x", "cursor=" + strings.Repeat("c", 600)} {
		wantError(t, serve(s, request("GET", "/v1/subscriptions?"+q, "")), 400, CodeInvalid)
	}
}

func TestGetDeleteSubscription(t *testing.T) {
	reg := newFakeRegistry()
	s := newServer(t, Options{Registry: reg, APITokens: []string{apiToken}})
	id := decode[Subscription](t, serve(s, request("POST", "/v1/subscriptions", `{"pubsub_token":"`+token+`"}`))).ID

	if rec := serve(s, request("GET", "/v1/subscriptions/"+id, "")); rec.Code != 200 || decode[Subscription](t, rec).ID != id {
		t.Fatalf("get: %d %s", rec.Code, rec.Body)
	}
	wantError(t, serve(s, request("GET", "/v1/subscriptions/sub_unknown", "")), 404, CodeNotFound)
	wantError(t, serve(s, request("GET", "/v1/subscriptions/"+strings.Repeat("x", 200), "")), 404, CodeNotFound)
	wantError(t, serve(s, request("DELETE", "/v1/subscriptions/sub_unknown", "")), 404, CodeNotFound)

	rec := serve(s, request("DELETE", "/v1/subscriptions/"+id, ""))
	if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Fatalf("delete: %d %q", rec.Code, rec.Body)
	}
	wantError(t, serve(s, request("GET", "/v1/subscriptions/"+id, "")), 404, CodeNotFound)
	wantError(t, serve(s, request("DELETE", "/v1/subscriptions/"+id, "")), 404, CodeNotFound)
}

// TestSubscriptionsMaskInboxIdentifier: no /v1 answer returns the inbox
// identifier (with a source_id, the contact's key to the public API) or
// the source_id; the identifier is shown masked.
func TestSubscriptionsMaskInboxIdentifier(t *testing.T) {
	reg := newFakeRegistry()
	s := newServer(t, Options{Registry: reg, APITokens: []string{apiToken}})
	const inbox, source = "Zx9kQ2mWp4LrT8vN3bYc6dHf", "ba852f78-ecf7-4770-8128-e6cc15f7d7cc"
	rec := serve(s, request("POST", "/v1/subscriptions",
		`{"pubsub_token":"`+token+`","inbox_identifier":"`+inbox+`","contact_identifier":"`+source+`"}`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("register: %d %s", rec.Code, rec.Body)
	}
	id := decode[Subscription](t, rec).ID
	for name, rec := range map[string]*httptest.ResponseRecorder{
		"create": rec,
		"get":    serve(s, request("GET", "/v1/subscriptions/"+id, "")),
		"list":   serve(s, request("GET", "/v1/subscriptions", "")),
	} {
		body := rec.Body.String()
		if rec.Code != http.StatusOK && rec.Code != http.StatusCreated {
			t.Fatalf("%s: %d %s", name, rec.Code, body)
		}
		if strings.Contains(body, inbox) || strings.Contains(body, source) || strings.Contains(body, token) {
			t.Errorf("%s returns a credential: %s", name, body)
		}
		if !strings.Contains(body, `"inbox_identifier":"Zx9k…"`) {
			t.Errorf("%s lacks the masked identifier: %s", name, body)
		}
	}
	if got := masked(Subscription{InboxIdentifier: "abc"}).InboxIdentifier; got != "…" {
		t.Errorf("short identifier masked as %q", got)
	}
}
