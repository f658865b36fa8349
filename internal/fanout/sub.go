package fanout

import (
	"context"
	"strings"
	"sync/atomic"
	"time"
	"unique"

	"github.com/relayhq/relay/internal/cable"
)

// Sub is the relay's one record of a subscription. The package that
// subscribes a token creates it (the registry for a contact, the feed
// manager for an account feed) and hands the same pointer to the cable pool,
// which carries it with every broadcast and state change. The fan-out routes
// with its ids, learns into it and reports to its Owner directly, so an
// event goes socket → fan-out → NATS → owner without a lookup by id.
type Sub struct {
	// ID is the subscription id (a hash of the token, never the token).
	ID string
	// Feed marks an account feed's subscription: what agents see is
	// published, private notes included, instead of being filtered as for
	// contacts.
	Feed bool
	// Owner hears what happens to the subscription. Set before the record
	// is shared; never nil.
	Owner Owner

	hints    atomic.Pointer[Hints] // registered and learned routing ids
	activity atomic.Int64          // unix nanoseconds of the last live message or conversation event
}

// Owner is the package a Sub belongs to. The fan-out and the pool call it on
// their own goroutines: no method may block.
type Owner interface {
	// State reports a change of the subscription in the pool.
	State(s *Sub, c cable.StateChange[*Sub])
	// Verify checks a subscription Chatwoot keeps leaving unconfirmed.
	Verify(ctx context.Context, s *Sub) (cable.Verdict, error)
	// Published: an event of the subscription is in NATS (or needed not
	// be: filtered, or a duplicate whose first copy is).
	Published(s *Sub, r Route)
	// Lost: a live event of the subscription was dropped for lack of
	// buffer room; only a catch-up brings it back.
	Lost(s *Sub)
	// Learned: a live event named ids the record lacked; they are in
	// Hints now.
	Learned(s *Sub)
}

// RouteFinder is implemented by an Owner that knows routes the payload may
// lack (an account feed: a conversation's inbox and contact, from earlier
// events). The fan-out asks it when an event names a conversation but not
// its contact.
type RouteFinder interface {
	FindRoute(s *Sub, accountID, conversationID string) (inboxID, contactID string, ok bool)
}

// NewSub returns a record with its registered routing ids.
func NewSub(id string, owner Owner, h Hints) *Sub {
	s := &Sub{ID: id, Owner: owner}
	s.SetHints(h)
	return s
}

// Hints returns the routing ids known so far.
func (s *Sub) Hints() Hints {
	if h := s.hints.Load(); h != nil {
		return *h
	}
	return Hints{}
}

// SetHints replaces the routing ids (a registration that names them).
// Ids learned before and not named again are kept. Ids that change nothing
// (none, or the same again) allocate nothing.
func (s *Sub) SetHints(h Hints) {
	for {
		old := s.hints.Load()
		n := h
		if old != nil {
			fill(&n.AccountID, old.AccountID)
			fill(&n.InboxID, old.InboxID)
			fill(&n.ContactID, old.ContactID)
		}
		if old == nil && n == (Hints{}) || old != nil && n == *old {
			return
		}
		next := n // only next escapes: n costs nothing when unchanged
		if s.hints.CompareAndSwap(old, &next) {
			return
		}
	}
}

// LastActivity is when a live message or conversation event of the
// subscription was last seen (typing and presence do not count: Chatwoot
// sends presence on every subscribe), or the zero time. Catch-up serves the
// most recently active first.
func (s *Sub) LastActivity() time.Time {
	if ns := s.activity.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// SetActivity moves LastActivity forward to t.
func (s *Sub) SetActivity(t time.Time) {
	ns := t.UnixNano()
	for {
		old := s.activity.Load()
		if ns <= old || s.activity.CompareAndSwap(old, ns) {
			return
		}
	}
}

// Observe learns from a routed live event: its time as activity when it
// is a message or conversation event, and the ids the record lacks. It
// reports whether ids were learned. The fan-out calls it for every live
// event it routes.
func (s *Sub) Observe(r *Route, at time.Time) bool {
	if r.Replayed {
		return false
	}
	if r.Kind == KindMessage || r.Kind == KindConversation {
		s.SetActivity(at)
	}
	for {
		old := s.hints.Load()
		var h Hints
		if old != nil {
			h = *old
		}
		if !(learns(h.AccountID, r.AccountID) || learns(h.InboxID, r.InboxID) || learns(h.ContactID, r.ContactID)) {
			return false
		}
		fill(&h.AccountID, own(r.AccountID, true))
		fill(&h.InboxID, own(r.InboxID, true))
		fill(&h.ContactID, own(r.ContactID, false))
		if s.hints.CompareAndSwap(old, &h) {
			return true
		}
	}
}

// learns reports whether v is a known id the record does not have yet.
func learns(have, v string) bool { return have == "" && v != "" && v != Unknown }

func fill(dst *string, v string) {
	if *dst == "" && v != Unknown {
		*dst = v
	}
}

// own returns a copy of v that shares no memory with the event it came
// from: route fields are substrings of the event's routing string, which a
// record kept for the subscription's life would keep alive. Account and
// inbox ids repeat across subscriptions: shared interns them.
func own(v string, shared bool) string {
	switch {
	case v == "" || v == Unknown:
		return ""
	case shared:
		return unique.Make(v).Value()
	default:
		return strings.Clone(v)
	}
}

// Deliver hands one broadcast of the pool to the fan-out: the pool's
// Handler.
func (f *Fanout) Deliver(d cable.Delivery[*Sub]) {
	s := d.Meta
	f.Handle(Event{SubID: d.ID, Sub: s, Hints: s.Hints(), Feed: s.Feed, Message: d.Message, Fields: d.Fields, Borrowed: d.Borrowed, ReceivedAt: d.ReceivedAt})
}

// OnState passes a change of the pool to the record's owner: the pool's
// OnState.
func OnState(c cable.StateChange[*Sub]) { c.Meta.Owner.State(c.Meta, c) }

// Verifier asks the record's owner: the pool's Verifier.
var Verifier cable.Verifier[*Sub] = cable.VerifierFunc[*Sub](func(ctx context.Context, _ string, s *Sub) (cable.Verdict, error) {
	return s.Owner.Verify(ctx, s)
})
