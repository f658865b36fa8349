package feeds

import (
	"strconv"
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

// Learn notes the ids of a routed event (from any subscription).
func (m *Manager) Learn(r fanout.Route) {
	if m == nil {
		return
	}
	m.routes.learn(r.AccountID, r.ConversationID, r.InboxID, r.ContactID)
}

// Hints are the routing hints of a feed broadcast: the account, and the
// conversation's inbox and contact when the payload does not name them.
func (m *Manager) Hints(s *Sub, message []byte) fanout.Hints {
	h := fanout.Hints{AccountID: strconv.FormatInt(s.AccountID, 10)}
	r, err := fanout.Resolve(fanout.Event{SubID: s.ID, Message: message, Hints: h})
	if err != nil || r.ContactID != fanout.Unknown || r.ConversationID == fanout.Unknown {
		return h
	}
	if v, ok := m.routes.lookup(r.AccountID, r.ConversationID); ok {
		h.InboxID, h.ContactID = v[0], v[1]
	}
	return h
}
