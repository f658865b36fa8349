package chatwoottest

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/relayhq/relay/internal/fixtures"
)

const inboxPath = "/public/api/v1/inboxes/inbox-1"

// TestFixtureScenario replays the scenario the fixtures were recorded from
// and compares REST bodies and the contact's cable frames with them.
func TestFixtureScenario(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		if _, err := e.fake.AddInbox(InboxConfig{Identifier: "inbox-1", Name: "Support API"}); err != nil {
			t.Fatal(err)
		}
		inbox := e.get(inboxPath)
		if want := compactFixture(t, "inbox_show.json"); !bytes.Equal(inbox.body, want) {
			t.Errorf("inbox show:\n got %s\nwant %s", inbox.body, want)
		}
		created := e.postJSON(inboxPath+"/contacts", map[string]any{"name": "Jane Customer", "email": "jane@example.com"})
		expectShape(t, "contact create", created.body, fixtures.Read(t, "api/contact_create.json"))
		ci := created.json(t)
		token, source := ci["pubsub_token"].(string), ci["source_id"].(string)
		contactPath := inboxPath + "/contacts/" + source

		c := e.subscribe(token)
		defer c.close()
		conv := e.postJSON(contactPath+"/conversations", nil)
		expectShape(t, "conversation create", conv.body, fixtures.Read(t, "api/conversation_create.json"))
		convPath := contactPath + "/conversations/1"
		msg := e.postJSON(convPath+"/messages", map[string]any{"content": "Hello, I need help", "echo_id": "echo-123"})
		expectShape(t, "message create", msg.body, fixtures.Read(t, "api/message_create.json"))

		reply, err := e.fake.AgentReply(1, 1, "Hi Jane, how can I help?")
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range []func() error{
			func() error { return e.fake.AgentTyping(1, 1, true, false) },
			func() error { return e.fake.AgentTyping(1, 1, false, false) },
			func() error { return e.fake.AgentTyping(1, 1, true, true) },
			func() error {
				_, err := e.fake.AgentEditMessage(reply.ID, "Hi Jane, how can I help you today?")
				return err
			},
			func() error { return e.fake.ResolveConversation(1, 1) },
		} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		frames := c.drain()
		names := []string{
			"01_conversation.created.json", "02_message.created.incoming_echo.json",
			"03_message.created.agent_reply.json", "04_conversation.updated.1.json",
			"05_conversation.typing_on.json", "06_conversation.typing_off.json",
			"07_conversation.typing_on.private.json", "08_message.updated.json",
			"09_conversation.status_changed.json", "10_conversation.updated.2.json",
		}
		if len(frames) != len(names) {
			t.Fatalf("got %d frames, want %d: %q", len(frames), len(names), frames)
		}
		for i, name := range names {
			expectShape(t, name, []byte(frames[i]), fixtures.Read(t, "cable/"+name))
		}
		expectShape(t, "messages index", e.get(convPath+"/messages").body, fixtures.Read(t, "api/messages_index.json"))
		expectShape(t, "conversations index", e.get(contactPath+"/conversations").body, fixtures.Read(t, "api/conversations_index.json"))
		if nf := e.get(inboxPath + "/contacts/nope"); nf.status != 404 || !bytes.Equal(nf.body, compactFixture(t, "notfound.json")) {
			t.Errorf("not found: %d %s", nf.status, nf.body)
		}
	})
}

func compactFixture(t *testing.T, name string) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, fixtures.Read(t, "api/"+name)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func expectShape(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if g, w := shape(t, got), shape(t, want); g != w {
		t.Errorf("%s: shape differs\n got %s\nwant %s\n body %s", what, g, w, got)
	}
}

func TestContactCreate(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		e.fake.AddInbox(InboxConfig{Identifier: "inbox-1"})
		first := e.postJSON(inboxPath+"/contacts", map[string]any{"source_id": "s-1", "email": "a@example.com"}).json(t)
		if got := sortedKeys(first); !slices.Equal(got, []string{"email", "id", "name", "phone_number", "pubsub_token", "source_id"}) {
			t.Fatalf("keys = %v", got)
		}
		tok := first["pubsub_token"].(string)
		if len(tok) != 24 || bytes.ContainsAny([]byte(tok), "0OIl+/=") {
			t.Errorf("pubsub_token %q is not 24 base58 characters", tok)
		}
		again := e.postJSON(inboxPath+"/contacts", map[string]any{"source_id": "s-1", "name": "ignored"}).json(t)
		if again["pubsub_token"] != tok || again["name"] != first["name"] {
			t.Errorf("create is not idempotent on source_id: %v vs %v", again, first)
		}
		byEmail := e.postForm(inboxPath+"/contacts", map[string][]string{"email": {"a@example.com"}}).json(t)
		if byEmail["id"] != first["id"] || byEmail["pubsub_token"] == tok || byEmail["source_id"] == "s-1" {
			t.Errorf("create with a known email should reuse the contact in a new session: %v", byEmail)
		}
	})
}

func TestValidationAndErrors(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		e.fake.AddInbox(InboxConfig{Identifier: "inbox-1"})
		e.fake.CreateContact("inbox-1", ContactParams{SourceID: "s-1"})
		tests := []struct {
			name, method, path, ctype, body string
			status                          int
			want                            string
		}{
			{"bad email", "POST", inboxPath + "/contacts", "application/json", `{"email":"nope"}`,
				422, `{"message":"Email Invalid email","attributes":["email"]}`},
			{"bad phone", "PATCH", inboxPath + "/contacts/s-1", "application/json", `{"phone_number":"12345"}`,
				422, `{"message":"Phone number should be in e164 format","attributes":["phone_number"]}`},
			{"bad json", "POST", inboxPath + "/contacts", "application/json", `{"email":`,
				400, `{"status":400,"error":"Bad Request"}`},
			{"unknown inbox", "GET", "/public/api/v1/inboxes/nope", "", "", 404, `{"status":404,"error":"Not Found"}`},
			{"unknown route", "GET", "/api/v1/accounts", "", "", 404, `{"status":404,"error":"Not Found"}`},
			{"wrong method", "DELETE", inboxPath + "/contacts/s-1", "", "", 404, `{"status":404,"error":"Not Found"}`},
			{"unknown conversation", "GET", inboxPath + "/contacts/s-1/conversations/9", "", "", 404, `{"status":404,"error":"Not Found"}`},
			{"non-numeric conversation", "GET", inboxPath + "/contacts/s-1/conversations/x/messages", "", "", 404, `{"status":404,"error":"Not Found"}`},
			{"typing", "POST", inboxPath + "/contacts/s-1/conversations/9/toggle_typing", "", "", 404, `{"status":404,"error":"Not Found"}`},
		}
		for _, tt := range tests { // no t.Run inside a bubble
			r := e.do(tt.method, tt.path, tt.ctype, []byte(tt.body))
			if r.status != tt.status || string(r.body) != tt.want {
				t.Errorf("%s: got %d %s, want %d %s", tt.name, r.status, r.body, tt.status, tt.want)
			}
		}
	})
}

func TestHMAC(t *testing.T) {
	restBubble(t, Options{}, func(t *testing.T, e *restEnv) {
		in, _ := e.fake.AddInbox(InboxConfig{Identifier: "inbox-1", HMACToken: "secret"})
		mand, _ := e.fake.AddInbox(InboxConfig{Identifier: "inbox-m", HMACToken: "secret2", HMACMandatory: true})
		good := IdentifierHash(in.HMACToken, "user-1")
		e.fake.CreateContact("inbox-1", ContactParams{SourceID: "s-1", Identifier: "user-1"})
		tests := []struct {
			name, path string
			status     int
		}{
			{"no hash, not mandatory", inboxPath + "/contacts/s-1", 200},
			{"wrong hash", inboxPath + "/contacts/s-1?identifier=user-1&identifier_hash=bad", 500},
			{"uppercase hash fails", inboxPath + "/contacts/s-1?identifier=user-1&identifier_hash=" + upper(good), 500},
			{"valid hash", inboxPath + "/contacts/s-1?identifier=user-1&identifier_hash=" + good, 200},
		}
		for _, tt := range tests {
			if r := e.get(tt.path); r.status != tt.status {
				t.Errorf("%s: status %d, want %d (%s)", tt.name, r.status, tt.status, r.body)
			}
		}
		if r := e.get(inboxPath + "/contacts/s-1?identifier=user-1&identifier_hash=bad"); string(r.body) != `{"status":500,"error":"Internal Server Error"}` {
			t.Errorf("500 body %s", r.body)
		}
		// Mandatory: create and show both need the hash; create does not verify.
		if r := e.postJSON("/public/api/v1/inboxes/inbox-m/contacts", map[string]any{"source_id": "m-1"}); r.status != 500 {
			t.Errorf("mandatory create without hash: %d", r.status)
		}
		h := IdentifierHash(mand.HMACToken, "u2")
		r := e.postJSON("/public/api/v1/inboxes/inbox-m/contacts", map[string]any{"source_id": "m-1", "identifier": "u2", "identifier_hash": h})
		if r.status != 200 {
			t.Fatalf("mandatory create with hash: %d %s", r.status, r.body)
		}
		if r := e.get("/public/api/v1/inboxes/inbox-m/contacts/m-1"); r.status != 500 {
			t.Errorf("mandatory show without hash: %d", r.status)
		}
	})
}

func upper(s string) string { return string(bytes.ToUpper([]byte(s))) }
