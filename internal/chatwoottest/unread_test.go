package chatwoottest

import "testing"

// unread_count counts the contact's messages the agents have not seen, at
// most 10, whatever else the conversation holds.
func TestUnreadCount(t *testing.T) {
	s := New(Options{})
	in, err := s.AddInbox(InboxConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ci, err := s.CreateContact(in.Identifier, ContactParams{})
	if err != nil {
		t.Fatal(err)
	}
	cv, err := s.CreateConversation(in.Identifier, ci.SourceID)
	if err != nil {
		t.Fatal(err)
	}
	unread := func() int {
		s.model.mu.Lock()
		defer s.model.mu.Unlock()
		c, err := s.model.contactInboxLocked(in.Identifier, ci.SourceID)
		if err != nil {
			t.Fatal(err)
		}
		conv, err := s.model.conversationLocked(c, cv.DisplayID, false)
		if err != nil {
			t.Fatal(err)
		}
		return conv.unreadCount()
	}
	send := func(n int) {
		for range n {
			if _, err := s.ContactSend(in.Identifier, ci.SourceID, cv.DisplayID, "hi", ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(3)
	for range 50 {
		if _, err := s.AgentReply(in.AccountID, cv.DisplayID, "reply"); err != nil {
			t.Fatal(err)
		}
	}
	if n := unread(); n != 3 {
		t.Fatalf("unread %d, want the 3 incoming among 50 replies", n)
	}
	send(20)
	if n := unread(); n != 10 {
		t.Fatalf("unread %d, want at most 10", n)
	}
}
