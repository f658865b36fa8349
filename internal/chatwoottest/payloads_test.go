package chatwoottest

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/fixtures"
)

// Golden values of the recorded fixtures.
var (
	fxToken  = "os7FhRoFVZEMeCwQpWaJFUxv"
	fxSource = "ba852f78-ecf7-4770-8128-e6cc15f7d7cc"
	fxT0     = time.Unix(1795248781, 0).UTC()
	fxAgent  = AgentData{ID: 1, Name: "Harness Agent 1", AvailabilityStatus: "online"}
	fxJane   = ContactData{ID: 1, Name: "Jane Customer", Email: "jane@example.com"}
)

func fxMillis(ms int) time.Time { return fxT0.Add(time.Duration(ms) * time.Millisecond) }

func fxContactInbox() ContactInboxData {
	return ContactInboxData{
		ID: 1, ContactID: 1, InboxID: 1, SourceID: fxSource, PubsubToken: fxToken,
		CreatedAt: fxMillis(659), UpdatedAt: fxMillis(659),
	}
}

func fxIncoming() MessageData {
	jane := fxJane
	return MessageData{
		ID: 1, AccountID: 1, InboxID: 1, ConversationID: 1, MessageType: MessageIncoming,
		Content: "Hello, I need help", CreatedAt: fxT0, UpdatedAt: fxMillis(962),
		SenderContact: &jane, UnreadCount: 1, LastActivityAt: fxT0, ContactSourceID: fxSource,
		EchoID: "echo-123",
	}
}

func fxReply(content string, updatedMS int) MessageData {
	agent := fxAgent
	return MessageData{
		ID: 2, AccountID: 1, InboxID: 1, ConversationID: 1, MessageType: MessageOutgoing,
		Content: content, CreatedAt: fxT0, UpdatedAt: fxMillis(updatedMS),
		SenderAgent: &agent, UnreadCount: 1, LastActivityAt: fxT0, ContactSourceID: fxSource,
	}
}

func fxConversation() ConversationData {
	return ConversationData{
		AccountID: 1, DisplayID: 1, InboxID: 1, ContactInbox: fxContactInbox(), Contact: fxJane,
		Status: "open", LastActivityAt: fxT0, CreatedAt: fxT0,
	}
}

// fxAfterReply is the conversation after the first agent reply (fixture 04).
func fxAfterReply(content string, updatedMS int) ConversationData {
	c := fxConversation()
	last := fxReply(content, updatedMS)
	c.LastMessage = &last
	c.UnreadCount = 1
	c.FirstReplyCreatedAt = fxMillis(972)
	c.UpdatedAt = time.Unix(1795248781, 973188900)
	agent := fxAgent
	c.Performer = &agent
	return c
}

// fixtureMessage returns the "message" object of a recorded frame, byte for byte.
func fixtureMessage(t *testing.T, name string) []byte {
	t.Helper()
	var frame struct {
		Message json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(fixtures.Read(t, "cable/"+name), &frame); err != nil {
		t.Fatal(err)
	}
	return frame.Message
}

func TestPayloadBuildersMatchFixtures(t *testing.T) {
	tests := []struct {
		fixture string
		build   func() []byte
	}{
		{"00_presence.update.json", func() []byte {
			return PresenceUpdate(1, map[int64]string{1: "online"})
		}},
		{"01_conversation.created.json", func() []byte {
			c := fxConversation()
			c.WaitingSince = fxT0
			c.UpdatedAt = time.Unix(1795248781, 818829800)
			return ConversationCreated(c)
		}},
		{"02_message.created.incoming_echo.json", func() []byte {
			return MessageCreated(fxIncoming())
		}},
		{"03_message.created.agent_reply.json", func() []byte {
			m := fxReply("Hi Jane, how can I help?", 972)
			agent := fxAgent
			m.Performer = &agent
			return MessageCreated(m)
		}},
		{"04_conversation.updated.1.json", func() []byte {
			return ConversationUpdated(fxAfterReply("Hi Jane, how can I help?", 972))
		}},
		{"05_conversation.typing_on.json", func() []byte {
			return ConversationTyping(fxAfterReply("Hi Jane, how can I help?", 972), fxAgent, true, false)
		}},
		{"06_conversation.typing_off.json", func() []byte {
			return ConversationTyping(fxAfterReply("Hi Jane, how can I help?", 972), fxAgent, false, false)
		}},
		{"07_conversation.typing_on.private.json", func() []byte {
			return ConversationTyping(fxAfterReply("Hi Jane, how can I help?", 972), fxAgent, true, true)
		}},
		{"08_message.updated.json", func() []byte {
			m := fxReply("Hi Jane, how can I help you today?", 1123)
			agent := fxAgent
			m.Performer = &agent
			m.EchoID = "must-not-appear"
			return MessageUpdated(m)
		}},
		{"09_conversation.status_changed.json", func() []byte {
			c := fxAfterReply("Hi Jane, how can I help you today?", 1123)
			c.Status = "resolved"
			c.UpdatedAt = time.Unix(1795248782, 130710800)
			return ConversationStatusChanged(c)
		}},
		{"10_conversation.updated.2.json", func() []byte {
			c := fxAfterReply("Hi Jane, how can I help you today?", 1123)
			c.Status = "resolved"
			c.UpdatedAt = time.Unix(1795248782, 130710800)
			return ConversationUpdated(c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			want := fixtureMessage(t, tt.fixture)
			if got := tt.build(); !bytes.Equal(got, want) {
				t.Errorf("payload differs from fixture\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

func TestMessageCreatedSized(t *testing.T) {
	base := fxReply("", 972)
	small := len(MessageCreated(fxReply("x", 972)))
	for _, n := range []int{small, small + 1, small + 2, 1024, 1025, 4096, 65536} {
		b, err := MessageCreatedSized(base, n)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if len(b) != n {
			t.Fatalf("n=%d: got %d bytes", n, len(b))
		}
		var v struct {
			Event string `json:"event"`
			Data  struct {
				ID int64 `json:"id"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &v); err != nil || v.Event != EventMessageCreated || v.Data.ID != 2 {
			t.Fatalf("n=%d: not a message.created: %v %+v", n, err, v)
		}
	}
	if _, err := MessageCreatedSized(base, small-1); err == nil {
		t.Fatal("size below minimum accepted")
	}
}

func TestPayloadEscapesLikeActiveSupport(t *testing.T) {
	m := fxIncoming()
	m.Content = `<b>"Tom & Jerry"</b>`
	got := MessageCreated(m)
	want := `"content":"\u003cb\u003e\"Tom \u0026 Jerry\"\u003c/b\u003e"`
	if !bytes.Contains(got, []byte(want)) {
		t.Fatalf("content not escaped like ActiveSupport::JSON: %s", got)
	}
}

func TestConversationUpdatedAtIsAlwaysAFloat(t *testing.T) {
	c := fxConversation()
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{time.Unix(946684800, 0), `"updated_at":946684800.0,`},
		{time.Unix(946684800, 500000000), `"updated_at":946684800.5,`},
	} {
		c.UpdatedAt = tc.at
		if got := ConversationUpdated(c); !bytes.Contains(got, []byte(tc.want)) {
			t.Errorf("want %s in %s", tc.want, got)
		}
	}
}
