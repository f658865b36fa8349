package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/chatwoottest"
)

// The Verifier asks Chatwoot whether a subscription that keeps going
// unconfirmed still has a contact, on inboxes with and without identity
// validation (which answers 500 to a contacts call without identifier_hash).
func TestVerify(t *testing.T) {
	e := newE2E(t, nil)
	for _, mandatory := range []bool{false, true} {
		inbox, err := e.fake.AddInbox(chatwoottest.InboxConfig{HMACToken: "inbox-secret", HMACMandatory: mandatory})
		if err != nil {
			t.Fatal(err)
		}
		mac := hmac.New(sha256.New, []byte("inbox-secret"))
		mac.Write([]byte("customer-7"))
		ci, err := e.fake.CreateContact(inbox.Identifier, chatwoottest.ContactParams{
			Identifier: "customer-7", IdentifierHash: hex.EncodeToString(mac.Sum(nil))})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		sub, _, err := e.app.registry.Register(ctx, api.Registration{
			Token: ci.PubsubToken, InboxIdentifier: inbox.Identifier, SourceID: ci.SourceID})
		if err != nil {
			t.Fatal(err)
		}
		entry := e.app.registry.Entry(sub.ID)
		if v, err := e.app.verify(ctx, sub.ID, entry); v != cable.VerdictValid {
			t.Errorf("hmac_mandatory=%v, contact present: verdict %v (%v), want valid", mandatory, v, err)
		}
		if err := e.fake.DeleteContact(ci.ContactID); err != nil {
			t.Fatal(err)
		}
		if v, err := e.app.verify(ctx, sub.ID, entry); v != cable.VerdictInvalid {
			t.Errorf("hmac_mandatory=%v, contact deleted: verdict %v (%v), want invalid", mandatory, v, err)
		}
	}
}
