package feeds

import (
	"testing"

	"github.com/relayhq/relay/internal/fanout"
)

// feedReply is an agent's reply as a feed receives it: it names the
// conversation, not the contact.
var feedReply = []byte(`{"event":"message.created","data":{"id":9,"account_id":1,"inbox_id":1,"conversation_id":1,"message_type":1,"content":"hello","private":false,"sender_type":"User","sender_id":1,"updated_at":"2026-01-01T00:00:00.000Z"}}`)

func feedSub(m *Manager) *Sub {
	s := &Sub{ID: "sub", AccountID: 1, m: m}
	s.rec = fanout.NewSub(s.ID, s, fanout.Hints{AccountID: "1"})
	s.rec.Feed = true
	m.nsubs.Add(1) // as if subscribed: routes are learned only with a feed
	return s
}

// A feed event that names no contact is routed to the contact an earlier
// event of its conversation named, in the fan-out's one pass.
func TestFeedEventFindsLearnedContact(t *testing.T) {
	m := New(Options{})
	s := feedSub(m)
	ev := fanout.Event{SubID: s.ID, Sub: s.rec, Hints: s.rec.Hints(), Feed: true}
	ev.Message = append([]byte(nil), feedReply...)
	if r, err := fanout.Resolve(ev); err != nil || r.ContactID != fanout.Unknown {
		t.Fatalf("before learning: %+v, %v", r, err)
	}
	// A contact's event of the conversation, as the fan-out shows it to
	// its observers.
	var o fanout.Observer = m
	o.Routed("contact-sub", fanout.Route{AccountID: "1", ConversationID: "1", InboxID: "1", ContactID: "42"})
	ev.Message = append([]byte(nil), feedReply...)
	if r, err := fanout.Resolve(ev); err != nil || r.ContactID != "42" || r.InboxID != "1" {
		t.Fatalf("after learning: %+v, %v", r, err)
	}
}

// BenchmarkFeedRoute is the routing of a feed broadcast whose contact is
// looked up.
func BenchmarkFeedRoute(b *testing.B) {
	m := New(Options{})
	m.routes.learn("1", "1", "1", "1")
	s := feedSub(m)
	ev := fanout.Event{SubID: s.ID, Sub: s.rec, Hints: s.rec.Hints(), Feed: true, Message: feedReply}
	for b.Loop() {
		fanout.Resolve(ev)
	}
}
