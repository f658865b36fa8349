package chatwoot

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkDecodeConversationList decodes a contact's conversations list
// as catch-up reads it: one conversation embedding 10,000 messages.
func BenchmarkDecodeConversationList(b *testing.B) {
	var msgs []string
	for i := 1; i <= 10_000; i++ {
		msgs = append(msgs, fmt.Sprintf(`{"id":%d,"content":"reply %d from the agent","message_type":1,"content_type":"text","content_attributes":{},"created_at":1795248781,"conversation_id":1,"sender":{"id":1,"name":"Agent","available_name":"Agent","avatar_url":"","type":"user","availability_status":"online","thumbnail":""}}`, i, i))
	}
	body := []byte(`[{"id":1,"uuid":"u","inbox_id":1,"contact_last_seen_at":0,"status":"open","agent_last_seen_at":0,"messages":[` +
		strings.Join(msgs, ",") + `],"contact":{"id":1,"name":"Jane","account_id":1}}]`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var out []Conversation
		if err := json.Unmarshal(body, &out); err != nil || len(out[0].Messages) != 10_000 {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePlain(b *testing.B) {
	var msgs []string
	for i := 1; i <= 10_000; i++ {
		msgs = append(msgs, fmt.Sprintf(`{"id":%d,"content":"reply %d from the agent","message_type":1,"content_type":"text","content_attributes":{},"created_at":1795248781,"conversation_id":1,"sender":{"id":1,"name":"Agent","available_name":"Agent","avatar_url":"","type":"user","availability_status":"online","thumbnail":""}}`, i, i))
	}
	body := []byte(`[{"id":1,"uuid":"u","inbox_id":1,"contact_last_seen_at":0,"status":"open","agent_last_seen_at":0,"messages":[` +
		strings.Join(msgs, ",") + `],"contact":{"id":1,"name":"Jane","account_id":1}}]`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var out []struct {
			ID       int64
			Messages []struct {
				ID        int64 `json:"id"`
				CreatedAt int64 `json:"created_at"`
			}
		}
		if err := json.Unmarshal(body, &out); err != nil || len(out[0].Messages) != 10_000 {
			b.Fatal(err)
		}
	}
	_ = json.Valid
}

func BenchmarkValid(b *testing.B) {
	var msgs []string
	for i := 1; i <= 10_000; i++ {
		msgs = append(msgs, fmt.Sprintf(`{"id":%d,"content":"reply %d from the agent","message_type":1,"content_type":"text","content_attributes":{},"created_at":1795248781,"conversation_id":1,"sender":{"id":1,"name":"Agent","available_name":"Agent","avatar_url":"","type":"user","availability_status":"online","thumbnail":""}}`, i, i))
	}
	body := []byte(`[{"id":1,"messages":[` + strings.Join(msgs, ",") + `]}]`)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if !json.Valid(body) {
			b.Fatal()
		}
	}
}
