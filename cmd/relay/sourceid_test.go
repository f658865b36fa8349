package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestSourceIDNotPublished: the contact's source_id (with the inbox
// identifier, its key to the public API) does not reach NATS, live or
// replayed, unless RELAY_FORWARD_SOURCE_IDS; routing and the ids the
// registry learns from events do not depend on it; /v1 shows the inbox
// identifier masked.
func TestSourceIDNotPublished(t *testing.T) {
	for _, forward := range []bool{false, true} {
		t.Run(fmt.Sprint("forward=", forward), func(t *testing.T) {
			e := newE2E(t, map[string]string{"RELAY_FORWARD_SOURCE_IDS": fmt.Sprint(forward)})
			base := "/public/api/v1/inboxes/" + e.inbox.Identifier
			resp, body := e.do("POST", base+"/contacts", map[string]any{"name": "Jane"}, nil)
			var contact struct {
				ID       int64  `json:"id"`
				SourceID string `json:"source_id"`
			}
			json.Unmarshal(body, &contact)
			subID := resp.Header.Get("Relay-Subscription")
			if resp.StatusCode != 200 || subID == "" || contact.SourceID == "" {
				t.Fatalf("contact create: %d %s", resp.StatusCode, body)
			}
			e.await("relay.subscription.confirmed", subID)
			_, body = e.do("POST", base+"/contacts/"+contact.SourceID+"/conversations", map[string]any{}, nil)
			var conv struct {
				ID int64 `json:"id"`
			}
			json.Unmarshal(body, &conv)
			e.fake.AgentReply(e.inbox.AccountID, conv.ID, "Hello Jane")
			created := e.await("conversation.created", `"contact_inbox"`)
			reply := e.await("message.created", "Hello Jane")
			for _, m := range []string{string(created.Data), string(reply.Data)} {
				if strings.Contains(m, contact.SourceID) != forward {
					t.Errorf("source_id published = %v, want %v: %s", !forward, forward, m)
				}
			}
			want := fmt.Sprintf("chatwoot.%d.%d.%d.%d.message.created", e.inbox.AccountID, e.inbox.ID, contact.ID, conv.ID)
			if reply.Subject != want {
				t.Errorf("subject %s, want %s", reply.Subject, want)
			}
			_, body = e.do("GET", "/v1/subscriptions/"+subID, nil, nil)
			if !strings.Contains(string(body), fmt.Sprintf(`"account_id":"%d"`, e.inbox.AccountID)) {
				t.Errorf("ids not learned from events: %s", body)
			}
			_, list := e.do("GET", "/v1/subscriptions", nil, nil)
			for _, b := range []string{string(body), string(list)} {
				if strings.Contains(b, e.inbox.Identifier) || strings.Contains(b, contact.SourceID) {
					t.Errorf("/v1 shows the inbox identifier or source_id: %s", b)
				}
			}
			if forward {
				return
			}
			// A reply sent while the relay is down comes back replayed.
			e.stop()
			e.fake.AgentReply(e.inbox.AccountID, conv.ID, "While the relay was down")
			e.start()
			if m := e.await("message.created", "While the relay was down"); strings.Contains(string(m.Data), contact.SourceID) {
				t.Errorf("replay publishes the source_id: %s", m.Data)
			}
		})
	}
}
