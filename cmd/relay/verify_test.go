package main

import (
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// A subscription whose contact exists but whose token is not the contact's
// never confirms (Chatwoot answers silence); the relay checks it with
// Chatwoot after a miss and declares it invalid, so it is not retried
// forever. The contact's own token confirms.
func TestVerifyWrongTokenOfRealContact(t *testing.T) {
	e := newE2E(t, map[string]string{"RELAY_CABLE_CONFIRM_TIMEOUT": "200ms", "RELAY_CABLE_VERIFY_AFTER": "1"})
	ci, err := e.fake.CreateContact(e.inbox.Identifier, chatwoottest.ContactParams{Name: "Jane"})
	if err != nil {
		t.Fatal(err)
	}
	register := func(token string) string {
		t.Helper()
		resp, body := e.do("POST", "/v1/subscriptions", map[string]any{
			"pubsub_token": token, "inbox_identifier": e.inbox.Identifier, "contact_identifier": ci.SourceID}, nil)
		if resp.StatusCode != 201 {
			t.Fatalf("register: %d %s", resp.StatusCode, body)
		}
		return strings.TrimPrefix(resp.Header.Get("Location"), "/v1/subscriptions/")
	}
	wrong := register("not-" + ci.PubsubToken)
	e.await("relay.subscription.invalid", wrong)
	if _, body := e.do("GET", "/v1/subscriptions/"+wrong, nil, nil); !strings.Contains(string(body), `"state":"invalid"`) {
		t.Fatalf("wrong token: %s", body)
	}
	right := register(ci.PubsubToken)
	e.await("relay.subscription.confirmed", right)
}
