package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A conversation created right after its contact, before the contact's
// subscription is confirmed, is announced once: Chatwoot's live
// conversation.created went to nobody, so the first catch-up replays it.
func TestConversationCreatedBeforeConfirm(t *testing.T) {
	e := newE2E(t, nil)
	base := "/public/api/v1/inboxes/" + e.inbox.Identifier
	e.fake.Stall(true) // the subscribe waits: nothing is confirmed yet
	resp, body := e.do("POST", base+"/contacts", map[string]any{"name": "Jane"}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("contact create: %d %s", resp.StatusCode, body)
	}
	subID := resp.Header.Get("Relay-Subscription")
	var contact struct {
		SourceID string `json:"source_id"`
	}
	decode(t, body, &contact)
	_, body = e.do("POST", fmt.Sprintf("%s/contacts/%s/conversations", base, contact.SourceID), map[string]any{}, nil)
	var conv struct {
		ID int64 `json:"id"`
	}
	decode(t, body, &conv)
	e.fake.Stall(false)

	created := 0
	deadline := time.After(20 * time.Second)
	for done := false; !done; {
		select {
		case m := <-e.msgs:
			switch {
			case strings.HasSuffix(m.Subject, fmt.Sprintf(".%d.conversation.created", conv.ID)):
				created++
				if m.Header.Get("Relay-Replayed") != "true" {
					t.Errorf("conversation.created not marked replayed: %v", m.Header)
				}
			case strings.HasSuffix(m.Subject, "relay.catchup.done") && strings.Contains(string(m.Data), subID):
				done = true
			}
		case <-deadline:
			t.Fatal("no catchup.done on NATS")
		}
	}
	if created != 1 {
		t.Fatalf("conversation.created published %d times, want 1", created)
	}
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}
