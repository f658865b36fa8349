package registry

import (
	"context"
	"sync/atomic"
	"time"
	"unique"

	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/catchup"
	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store"
)

// Entry is the registry's record of one contact subscription: the
// fan-out's record, which the pool carries, and the facts catch-up needs.
// It is the record's Owner: what happens to the subscription reaches it
// directly, and it applies the rules (lifecycle events, catch-up, learned
// ids, verification) without a lookup by id.
type Entry struct {
	sub        fanout.Sub // the pool carries &sub: one allocation per subscription
	reg        *Registry
	meta       atomic.Pointer[Meta]
	handedOver atomic.Bool   // removed from the pool for another replica
	catchup    catchup.State // catch-up's state; every Meta points to it
}

var _ fanout.Owner = (*Entry)(nil)

// Sub returns the fan-out's record.
func (e *Entry) Sub() *fanout.Sub { return &e.sub }

// Meta returns the current facts. A subscription that cannot be caught up
// keeps none (most registered by token alone): its facts are its id and
// routing ids, made when asked for.
func (e *Entry) Meta() *Meta {
	if m := e.meta.Load(); m != nil {
		return m
	}
	return &Meta{ID: e.sub.ID, Sub: &e.sub, State: &e.catchup}
}

// LastActivity is when a live message or conversation event of the
// subscription was last seen, or the zero time.
func (e *Entry) LastActivity() time.Time { return e.sub.LastActivity() }

// HandedOver reports whether the entry was removed from the pool because
// its bucket went to another replica.
func (e *Entry) HandedOver() bool { return e.handedOver.Load() }

// metaOf is the facts of a stored record, or nil when they are only its
// id and routing ids (it cannot be caught up). The routing ids live in the
// record's Sub alone (Meta.Hints reads them there); ids that repeat across
// subscriptions are interned, so 100,000 contacts of one inbox hold its
// identifier once.
func (e *Entry) metaOf(rec store.Subscription) *Meta {
	if rec.InboxIdentifier == "" || rec.SourceID == "" {
		return nil
	}
	return &Meta{ID: e.sub.ID, InboxIdentifier: intern(rec.InboxIdentifier), SourceID: rec.SourceID,
		CreatedAt: rec.CreatedAt, Sub: &e.sub, State: &e.catchup}
}

// intern returns v backed by one copy per distinct value.
func intern(v string) string {
	if v == "" {
		return ""
	}
	return unique.Make(v).Value()
}

// entryOf returns the entry of a pool record the registry owns, or nil.
func entryOf(s *fanout.Sub) *Entry {
	if s == nil {
		return nil
	}
	e, _ := s.Owner.(*Entry)
	return e
}

// MetaOf returns the facts of a pool record the registry owns, or nil.
func MetaOf(s *fanout.Sub) *Meta {
	if e := entryOf(s); e != nil {
		return e.Meta()
	}
	return nil
}

// Events is where lifecycle events go; *fanout.Fanout implements it.
type Events interface {
	Lifecycle(ev fanout.LifecycleEvent) error
}

// CatchUp is what the registry drives of catch-up; *catchup.Catchup
// implements it.
type CatchUp interface {
	Trigger(t *catchup.Target, lastActivity time.Time)
	Gap(t *catchup.Target, lastActivity time.Time)
	Lost(t *catchup.Target)
	Forget(t *catchup.Target)
	ObserveLive(t *catchup.Target, r fanout.Route)
}

// SessionVerifier is the Chatwoot call behind Verify; *chatwoot.Client
// implements it.
type SessionVerifier interface {
	VerifySession(ctx context.Context, ci chatwoot.ContactInbox, token string) (chatwoot.Session, error)
}

// Wire connects the registry to what its records report to. Call it once,
// before subscriptions are added.
func (r *Registry) Wire(events Events, cu CatchUp, sessions SessionVerifier) {
	r.events, r.catchup, r.sessions = events, cu, sessions
}

// Gone stops a subscription whose contact Chatwoot no longer knows
// (catch-up read a 404): the pool unsubscribes it, and its invalid
// lifecycle event says so. The stored record stays, as for any invalid
// subscription, until it is removed or registered again. It is catch-up's
// OnGone.
func (r *Registry) Gone(id string) {
	if r.pool != nil && r.pool.Invalidate(id, "gone") {
		r.log.Info("subscription stopped: Chatwoot no longer knows its contact", "subscription", id)
	}
}

// State applies the rules of a pool state change: the lifecycle event on
// NATS and the catch-up it calls for.
func (e *Entry) State(s *fanout.Sub, c cable.StateChange[*fanout.Sub]) {
	r, m := e.reg, e.Meta()
	h := s.Hints()
	ev := fanout.LifecycleEvent{SubscriptionID: c.ID, At: c.At, Reason: c.Reason,
		AccountID: h.AccountID, InboxID: h.InboxID, ContactID: h.ContactID}
	switch c.Change {
	case cable.ChangeConfirmed:
		ev.Event = fanout.SubscriptionConfirmed
		r.catchup.Trigger(m, s.LastActivity())
	case cable.ChangeLost:
		ev.Event = fanout.SubscriptionLost
		r.catchup.Lost(m)
	case cable.ChangeGap:
		r.catchup.Gap(m, time.Now())
		return
	case cable.ChangeInvalid:
		ev.Event = fanout.SubscriptionInvalid
		r.catchup.Forget(m)
	case cable.ChangeRemoved:
		ev.Event = fanout.SubscriptionRemoved
		r.catchup.Forget(m)
		if e.HandedOver() {
			return // another replica subscribes it now
		}
	default:
		return
	}
	if err := r.events.Lifecycle(ev); err != nil {
		r.log.Warn("lifecycle event not published", "subscription", c.ID, "event", ev.Event, "err", err)
	}
}

// Published moves catch-up's cursors past an event NATS holds. A
// subscription without catch-up facts has no cursors: nothing to do, and
// nothing allocated per event.
func (e *Entry) Published(_ *fanout.Sub, rt fanout.Route) {
	if m := e.meta.Load(); m != nil {
		e.reg.catchup.ObserveLive(m, rt)
	}
}

// Lost: a live event was dropped; like a cable gap, a catch-up fills it.
func (e *Entry) Lost(*fanout.Sub) { e.reg.catchup.Gap(e.Meta(), time.Now()) }

// Learned queues the record's new ids for the store. The live record has
// them already; a slow store never stalls delivery.
func (e *Entry) Learned(*fanout.Sub) {
	select {
	case e.reg.learned <- e:
	default: // the worker is behind; the ids stay in memory and are written with the next fact
	}
}

// Verify checks a subscription that keeps going unconfirmed: it is invalid
// when its contact inbox is gone or holds another pubsub_token.
// Subscriptions registered by token only cannot be checked.
func (e *Entry) Verify(ctx context.Context, s *fanout.Sub) (cable.Verdict, error) {
	r, m := e.reg, e.Meta()
	if r.sessions == nil || m == nil || !m.CatchUp() {
		return cable.VerdictUnknown, nil
	}
	rec, err := r.store.GetSubscription(ctx, s.ID)
	if err != nil {
		return cable.VerdictUnknown, err
	}
	v, err := r.sessions.VerifySession(ctx, chatwoot.ContactInbox{Inbox: m.InboxIdentifier, SourceID: m.SourceID}, rec.Token)
	switch v {
	case chatwoot.SessionValid:
		return cable.VerdictValid, nil
	case chatwoot.SessionGone, chatwoot.SessionMismatch:
		r.log.Info("subscription checked with Chatwoot", "subscription", s.ID, "session", v.String())
		return cable.VerdictInvalid, nil
	}
	return cable.VerdictUnknown, err
}

type noEvents struct{}

func (noEvents) Lifecycle(fanout.LifecycleEvent) error { return nil }

type noCatchUp struct{}

func (noCatchUp) Trigger(*catchup.Target, time.Time)        {}
func (noCatchUp) Gap(*catchup.Target, time.Time)            {}
func (noCatchUp) Lost(*catchup.Target)                      {}
func (noCatchUp) Forget(*catchup.Target)                    {}
func (noCatchUp) ObserveLive(*catchup.Target, fanout.Route) {}
