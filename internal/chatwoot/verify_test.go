package chatwoot_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/chatwoottest"
)

// VerifySession against the fake Chatwoot, on inboxes with and without
// identity validation enforced (which answers 500 to a contact show
// without identifier_hash, so only the contact inbox's existence can be
// checked).
func TestVerifySession(t *testing.T) {
	fake := chatwoottest.New(chatwoottest.Options{})
	t.Cleanup(func() { fake.Close() })
	srv := httptest.NewServer(fake.Handler())
	t.Cleanup(srv.Close)
	client, err := chatwoot.New(chatwoot.Options{BaseURL: srv.URL, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, mandatory := range []bool{false, true} {
		inbox, err := fake.AddInbox(chatwoottest.InboxConfig{HMACToken: "inbox-secret", HMACMandatory: mandatory})
		if err != nil {
			t.Fatal(err)
		}
		ci, err := fake.CreateContact(inbox.Identifier, chatwoottest.ContactParams{
			Identifier: "customer-7", IdentifierHash: chatwoottest.IdentifierHash("inbox-secret", "customer-7")})
		if err != nil {
			t.Fatal(err)
		}
		session := chatwoot.ContactInbox{Inbox: inbox.Identifier, SourceID: ci.SourceID}
		wrong := "made-up-" + ci.PubsubToken
		wantWrong := chatwoot.SessionMismatch
		if mandatory {
			wantWrong = chatwoot.SessionValid // the token cannot be read there
		}
		check := func(what, token string, want chatwoot.Session) {
			t.Helper()
			got, err := client.VerifySession(ctx, session, token)
			if got != want || err != nil {
				t.Errorf("hmac_mandatory=%v, %s: %v (%v), want %v", mandatory, what, got, err, want)
			}
		}
		check("contact present, its token", ci.PubsubToken, chatwoot.SessionValid)
		check("contact present, another token", wrong, wantWrong)

		fake.SetFault(chatwoottest.AllRoutes, chatwoottest.Fault{Status: 503})
		got, err := client.VerifySession(ctx, session, wrong)
		fake.ClearFaults()
		if got != chatwoot.SessionUnknown || err == nil || strings.Contains(err.Error(), ci.PubsubToken) || strings.Contains(err.Error(), ci.SourceID) {
			t.Errorf("hmac_mandatory=%v, Chatwoot failing: %v (%v), want unknown and an error without secrets", mandatory, got, err)
		}

		if err := fake.DeleteContact(ci.ContactID); err != nil {
			t.Fatal(err)
		}
		check("contact deleted", ci.PubsubToken, chatwoot.SessionGone)
	}
}
