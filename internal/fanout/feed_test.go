package fanout

import (
	"testing"
	"testing/synctest"
)

// Private-note typing is filtered for contacts but published, marked
// private, for an account feed; a contact copy of the same broadcast
// dropped first does not hide the feed's.
func TestFeedKeepsPrivateTyping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newFakePub(true)
		f := newTestFanout(t, p, Options{})
		f.Handle(Event{SubID: "contact", Message: fixtureMessage(t, "07_conversation.typing_on.private.json")})
		f.Handle(Event{SubID: "feed", Feed: true, Message: fixtureMessage(t, "07_conversation.typing_on.private.json")})
		f.Handle(Event{SubID: "feed", Feed: true, Message: fixtureMessage(t, "07_conversation.typing_on.private.json")})
		synctest.Wait()
		stored := p.storedMsgs()
		if len(stored) != 1 || stored[0].Header.Get(HeaderSubscription) != "feed" || stored[0].Header.Get(HeaderVisibility) != VisibilityPrivate {
			t.Fatalf("stored %d events (%v), want the feed's once, marked private", len(stored), stored)
		}
		_ = closeNow(f)
	})
}

func TestVisibility(t *testing.T) {
	tests := []struct {
		msg, want, contact string
	}{
		{`{"event":"message.created","data":{"id":1,"account_id":1,"message_type":1,"private":true}}`, VisibilityPrivate, "_"},
		{`{"event":"message.created","data":{"id":2,"account_id":1,"message_type":2,"private":false}}`, VisibilityActivity, "_"},
		{`{"event":"message.created","data":{"id":3,"account_id":1,"message_type":"activity"}}`, VisibilityActivity, "_"},
		{`{"event":"message.created","data":{"id":4,"account_id":1,"message_type":1,"private":false}}`, "", "_"},
		{`{"event":"message.updated","data":{"id":5,"account_id":1,"message_type":0,"private":false,"updated_at":"x"}}`, "", "_"},
		{`{"event":"conversation.read","data":{"id":6,"account_id":1,"updated_at":1.5}}`, VisibilityAgent, "_"},
		{`{"event":"conversation.updated","data":{"id":6,"account_id":1,"updated_at":1.5}}`, "", "_"},
		{`{"event":"assignee.changed","data":{"id":6,"account_id":1,"meta":{"sender":{"id":8}}}}`, VisibilityAgent, "8"},
		{`{"event":"contact.updated","data":{"id":9,"account_id":1,"name":"n"}}`, VisibilityAgent, "9"},
		{`{"event":"notification.created","data":{"account_id":1}}`, VisibilityAgent, "_"},
		{`{"event":"presence.update","data":{"account_id":1,"users":{}}}`, "", "_"},
	}
	for _, tt := range tests {
		r, err := Resolve(Event{SubID: "s", Message: []byte(tt.msg)})
		if err != nil {
			t.Fatalf("%s: %v", tt.msg, err)
		}
		if r.Visibility != tt.want || r.ContactID != tt.contact {
			t.Errorf("%s: visibility %q contact %q, want %q %q", tt.msg, r.Visibility, r.ContactID, tt.want, tt.contact)
		}
	}
}
