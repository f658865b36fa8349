package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestCreateSubscriptionsBatch: every item gets its result, in order; bad
// items and refused ones fail alone, the others are registered in one
// registry call; nothing answered quotes a token or source_id.
func TestCreateSubscriptionsBatch(t *testing.T) {
	reg := newFakeRegistry()
	s := newServer(t, Options{Registry: reg, APITokens: []string{apiToken}})
	long := strings.Repeat("x", maxCredentialLen+1)
	items := []string{
		`{"pubsub_token":"tok-a","inbox_identifier":"inbox-1","contact_identifier":"src-secret"}`,
		`{"inbox_identifier":"inbox-1"}`,                                    // no token
		`{"pubsub_token":"has space"}`,                                      // bad token
		`{"pubsub_token":"tok-b","extra":1}`,                                // unknown field
		`"tok-c"`,                                                           // not an object
		`{"pubsub_token":"tok-d","contact_identifier":"src-2"}`,             // source_id without inbox
		`{"pubsub_token":"` + long + `"}`,                                   // too long
		`{"pubsub_token":42}`,                                               // wrong type
		`{"pubsub_token":"` + refusedToken + `tok","inbox_identifier":"i"}`, // over the limit
		`{"pubsub_token":"tok-a"}`,                                          // again: known
		`{"pubsub_token":"tok-e"}`,
	}
	rec := serve(s, request("POST", "/v1/subscriptions/batch", `{"subscriptions":[`+strings.Join(items, ",")+`]}`))
	if rec.Code != http.StatusOK {
		t.Fatalf("batch: %d %s", rec.Code, rec.Body)
	}
	got := decode[batchResponse](t, rec)
	want := []struct{ outcome, id, code string }{
		{"created", fakeID("tok-a"), ""}, {"failed", "", CodeInvalid}, {"failed", "", CodeInvalid},
		{"failed", "", CodeInvalid}, {"failed", "", CodeInvalid}, {"failed", "", CodeInvalid},
		{"failed", "", CodeInvalid}, {"failed", "", CodeInvalid}, {"failed", "", CodeLimit},
		{"unchanged", fakeID("tok-a"), ""}, {"created", fakeID("tok-e"), ""},
	}
	if len(got.Results) != len(want) {
		t.Fatalf("%d results, want %d: %s", len(got.Results), len(want), rec.Body)
	}
	for i, w := range want {
		r := got.Results[i]
		code := ""
		if r.Error != nil {
			code = r.Error.Code
			if r.Error.Message == "" || strings.Contains(r.Error.Message, "registration ") {
				t.Errorf("item %d: message %q", i, r.Error.Message)
			}
		}
		if r.Outcome != w.outcome || r.ID != w.id || code != w.code {
			t.Errorf("item %d = %+v (error %v), want %+v", i, r, r.Error, w)
		}
	}
	if got.batchCounts != (batchCounts{Created: 2, Unchanged: 1, Failed: 8}) {
		t.Errorf("counts = %+v", got.batchCounts)
	}
	if reg.batches != 1 || reg.calls != 3 {
		t.Errorf("%d RegisterBatch calls registering %d, want 1 and 3", reg.batches, reg.calls)
	}
	first := Registration{Token: "tok-a", InboxIdentifier: "inbox-1", SourceID: "src-secret", Origin: OriginAPI}
	if regs := reg.registrations(); len(regs) != 3 || regs[0] != first || regs[2].Token != "tok-e" {
		t.Errorf("registrations = %+v", regs)
	}
	for _, secret := range []string{"tok-a", "tok-e", "src-secret", "has space", refusedToken} {
		if strings.Contains(rec.Body.String(), secret) {
			t.Errorf("answer quotes %q: %s", secret, rec.Body)
		}
	}
}

// TestCreateSubscriptionsBatchBadRequest: a request that is not a batch
// is refused whole, and the registry is not called.
func TestCreateSubscriptionsBatchBadRequest(t *testing.T) {
	many := strings.Repeat(`{"pubsub_token":"t"},`, MaxBatchRegistrations) + `{"pubsub_token":"t"}`
	tests := []struct {
		name, body, contentType string
		status                  int
	}{
		{"malformed JSON", `{"subscriptions":[`, "application/json", 400},
		{"no subscriptions", `{}`, "application/json", 400},
		{"null subscriptions", `{"subscriptions":null}`, "application/json", 400},
		{"empty subscriptions", `{"subscriptions":[]}`, "application/json", 400},
		{"subscriptions not an array", `{"subscriptions":{"pubsub_token":"t"}}`, "application/json", 400},
		{"unknown field", `{"subscriptions":[{"pubsub_token":"t"}],"mode":"x"}`, "application/json", 400},
		{"a bare array", `[{"pubsub_token":"t"}]`, "application/json", 400},
		{"trailing data", `{"subscriptions":[{"pubsub_token":"t"}]} {}`, "application/json", 400},
		{"too many items", `{"subscriptions":[` + many + `]}`, "application/json", 400},
		{"over the body limit", `{"subscriptions":[{"pubsub_token":"` + strings.Repeat("a", 2<<20) + `"}]}`, "application/json", 413},
		{"not JSON", `pubsub_token=t`, "application/x-www-form-urlencoded", 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := newFakeRegistry()
			s := newServer(t, Options{Registry: reg, APITokens: []string{apiToken}})
			rec := serve(s, request("POST", "/v1/subscriptions/batch", tt.body, "Content-Type", tt.contentType))
			wantError(t, rec, tt.status, CodeInvalid)
			if reg.batches != 0 {
				t.Errorf("registry called %d times", reg.batches)
			}
		})
	}
}

// TestCreateSubscriptionsBatchStoreDown: a batch the registry cannot store
// is 503 whole, without quoting the tokens the registry's error held.
func TestCreateSubscriptionsBatchStoreDown(t *testing.T) {
	reg := newFakeRegistry()
	reg.setErr(fmt.Errorf("%w: store down for tok-secret", ErrUnavailable))
	s := newServer(t, Options{Registry: reg, APITokens: []string{apiToken}})
	rec := serve(s, request("POST", "/v1/subscriptions/batch", `{"subscriptions":[{"pubsub_token":"tok-secret"}]}`))
	wantError(t, rec, http.StatusServiceUnavailable, CodeUnavailable, "tok-secret")
}

// TestCreateSubscriptionsBatchScope: the batch needs the admin scope, as
// POST /v1/subscriptions does.
func TestCreateSubscriptionsBatchScope(t *testing.T) {
	reg := newFakeRegistry()
	s := newServer(t, Options{Registry: reg, Tokens: []Token{{Value: "proxy-only", Scopes: []Scope{ScopeProxy}}}})
	body := `{"subscriptions":[{"pubsub_token":"tok-a"}]}`
	rec := serve(s, request("POST", "/v1/subscriptions/batch", body, "Authorization", "Bearer proxy-only"))
	wantError(t, rec, http.StatusForbidden, CodeForbidden)
	rec = serve(s, request("POST", "/v1/subscriptions/batch", body, "Authorization", "Bearer wrong"))
	wantError(t, rec, http.StatusUnauthorized, CodeUnauthorized)
	if reg.batches != 0 {
		t.Errorf("registry called %d times", reg.batches)
	}
}
