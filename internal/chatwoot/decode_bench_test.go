package chatwoot

import (
	"fmt"
	"strings"
	"testing"
)

// longConversationList is a contact's conversations index with one
// conversation of n agent replies, as catch-up reads it after a reconnect.
func longConversationList(n int) []byte {
	msgs := make([]string, 0, n)
	for i := 1; i <= n; i++ {
		msgs = append(msgs, fmt.Sprintf(`{"id":%d,"content":"reply %d from the agent","message_type":1,"content_type":"text","content_attributes":{},"created_at":1795248781,"conversation_id":1,"sender":{"id":1,"name":"Agent","available_name":"Agent","avatar_url":"","type":"user","availability_status":"online","thumbnail":""}}`, i, i))
	}
	return []byte(`[{"id":1,"uuid":"u","inbox_id":1,"contact_last_seen_at":0,"status":"open","agent_last_seen_at":0,"messages":[` +
		strings.Join(msgs, ",") + `],"contact":{"id":1,"name":"Jane","account_id":1}}]`)
}

// BenchmarkDecodeConversationList decodes a list embedding 10,000 messages
// with the one-pass decoder ListConversations uses.
func BenchmarkDecodeConversationList(b *testing.B) {
	body := longConversationList(10_000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var out []Conversation
		if err := conversationList(&out)(body); err != nil || len(out[0].Messages) != 10_000 {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeConversationListEncodingJSON decodes the same list through
// encoding/json with an UnmarshalJSON per level, as the client did before:
// compare the two in one run.
func BenchmarkDecodeConversationListEncodingJSON(b *testing.B) {
	body := longConversationList(10_000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var out []refConversation
		if err := decodeAs(body, '[', &out); err != nil || len(out[0].Messages) != 10_000 {
			b.Fatal(err)
		}
	}
}
