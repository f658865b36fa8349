package feeds

import (
	"sync"

	"github.com/relayhq/relay/internal/fanout"
)

// maxRoutes bounds the conversations whose contact the manager remembers;
// past it the table starts again empty.
const maxRoutes = 100_000

// routeTable remembers, per conversation, the inbox and contact ids events
// carried. Agent-side payloads (an agent's reply, a private note, an
// activity message) do not name the contact; a contact's subscription
// knows it from its record, a feed learns it here, so both put an event on
// the same subject.
type routeTable struct {
	mu sync.Mutex
	m  map[string][2]string // "<account>:<display_id>" -> inbox, contact
}

func (t *routeTable) learn(account, conv, inbox, contact string) {
	if account == fanout.Unknown || conv == fanout.Unknown || contact == fanout.Unknown || contact == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil || len(t.m) >= maxRoutes {
		t.m = make(map[string][2]string)
	}
	t.m[account+":"+conv] = [2]string{inbox, contact}
}

func (t *routeTable) lookup(account, conv string) ([2]string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[account+":"+conv]
	return v, ok
}

// Routed notes the ids of a routed event (from any subscription): the
// fan-out calls it as an Observer. Without feed subscriptions it costs one
// atomic load: there is nothing to route.
func (m *Manager) Routed(_ string, r fanout.Route) {
	if m == nil || m.nsubs.Load() == 0 {
		return
	}
	m.routes.learn(r.AccountID, r.ConversationID, r.InboxID, r.ContactID)
}

// FindRoute is the inbox and contact of a conversation an earlier event
// named, for a feed event that does not name them (an agent's reply, a
// private note, an activity message).
func (s *Sub) FindRoute(_ *fanout.Sub, accountID, conversationID string) (string, string, bool) {
	v, ok := s.m.routes.lookup(accountID, conversationID)
	return v[0], v[1], ok
}
