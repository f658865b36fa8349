package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
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

// RELAY_MAX_SUBSCRIPTIONS refuses new subscriptions past it with a clear
// error on POST /v1/subscriptions, in Relay-Subscription-Error on a contact
// create (the contact is still created and returned) and as a rejected
// line of the subscriptions file; a re-registration is never refused.
func TestMaxSubscriptions(t *testing.T) {
	file := t.TempDir() + "/subscriptions"
	os.WriteFile(file, []byte("static-token-1\n"), 0o600)
	e := newE2E(t, map[string]string{"RELAY_MAX_SUBSCRIPTIONS": "2", "RELAY_SUBSCRIPTIONS_FILE": file})

	resp, body := e.do("POST", "/v1/subscriptions", map[string]any{"pubsub_token": "api-token-1"}, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("under the limit: %d %s", resp.StatusCode, body)
	}
	resp, body = e.do("POST", "/v1/subscriptions", map[string]any{"pubsub_token": "api-token-2"}, nil)
	if resp.StatusCode != 507 || !strings.Contains(string(body), `"code":"limit"`) ||
		!strings.Contains(string(body), "maximum of 2 subscriptions") || strings.Contains(string(body), "api-token-2") {
		t.Fatalf("past the limit: %d %s", resp.StatusCode, body)
	}
	if resp, body = e.do("POST", "/v1/subscriptions", map[string]any{"pubsub_token": "api-token-1"}, nil); resp.StatusCode != 200 {
		t.Fatalf("re-registration at the limit: %d %s", resp.StatusCode, body)
	}

	base := "/public/api/v1/inboxes/" + e.inbox.Identifier
	resp, body = e.do("POST", base+"/contacts", map[string]any{"name": "Jane"}, nil)
	var contact struct {
		SourceID    string `json:"source_id"`
		PubsubToken string `json:"pubsub_token"`
	}
	decode(t, body, &contact)
	if resp.StatusCode != 200 || contact.PubsubToken == "" || resp.Header.Get("Relay-Subscription-Error") != "limit" ||
		resp.Header.Get("Relay-Subscription") != "" {
		t.Fatalf("contact create past the limit: %d %v %s", resp.StatusCode, resp.Header, body)
	}

	os.WriteFile(file, []byte("static-token-1\nstatic-token-2\n"), 0o600)
	err := e.app.static.reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "line 2: ") || !strings.Contains(err.Error(), "limit") ||
		strings.Contains(err.Error(), "static-token-2") {
		t.Fatalf("file past the limit: %v", err)
	}
	if v := relayMetric(t, e.app.httpURL(), "relay_subscriptions_refused_total", ""); v != 3 {
		t.Fatalf("relay_subscriptions_refused_total = %v, want 3", v)
	}
}

// The subscription lifecycle defaults (README configuration table), and
// their validation.
func TestLifecycleDefaults(t *testing.T) {
	c, err := loadConfig(map[string]string{"RELAY_CHATWOOT_URL": "https://chat.example.com"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.MaxSubscriptions, c.CableParkAfter, c.CableParkInterval); got != "1000000 5 10m0s" {
		t.Fatalf("defaults %s", got)
	}
	_, err = loadConfig(map[string]string{"RELAY_CHATWOOT_URL": "https://chat.example.com",
		"RELAY_MAX_SUBSCRIPTIONS": "-1", "RELAY_CABLE_PARK_AFTER": "0", "RELAY_CABLE_PARK_INTERVAL": "-1s"}, false)
	for _, name := range []string{"RELAY_MAX_SUBSCRIPTIONS", "RELAY_CABLE_PARK_AFTER", "RELAY_CABLE_PARK_INTERVAL"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s not reported: %v", name, err)
		}
	}
}
