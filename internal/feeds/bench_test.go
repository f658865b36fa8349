package feeds

import "testing"

// BenchmarkHints is the extra routing pass of a feed broadcast: an agent's
// reply names no contact, the conversation's is looked up.
func BenchmarkHints(b *testing.B) {
	m := New(Options{})
	m.routes.learn("1", "1", "1", "1")
	ev := []byte(`{"event":"message.created","data":{"id":9,"account_id":1,"inbox_id":1,"conversation_id":1,"message_type":1,"content":"hello","private":false,"sender_type":"User","sender_id":1,"updated_at":"2026-01-01T00:00:00.000Z"}}`)
	s := &Sub{ID: "sub", AccountID: 1}
	if h := m.Hints(s, ev); h.ContactID != "1" {
		b.Fatalf("hints %+v", h)
	}
	for b.Loop() {
		m.Hints(s, ev)
	}
}
