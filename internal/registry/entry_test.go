package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/catchup"
	"github.com/relayhq/relay/internal/chatwoot"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/store"
)

// ruleLog records what an entry's rules publish and ask of catch-up.
type ruleLog struct {
	mu  sync.Mutex
	log []string
	st  *catchup.State // the entry's catch-up state: calls with another one say so
}

// other is "" for the entry's own catch-up state, else a mark.
func (l *ruleLog) other(st *catchup.State) string {
	if st == l.st && st != nil {
		return ""
	}
	return "(other state)"
}

func (l *ruleLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log = append(l.log, fmt.Sprintf(format, args...))
}

func (l *ruleLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := fmt.Sprint(l.log)
	l.log = nil
	return s
}

func (l *ruleLog) Lifecycle(ev fanout.LifecycleEvent) error {
	l.add("%s(%s)", ev.Event, ev.ContactID)
	return nil
}
func (l *ruleLog) Trigger(t *catchup.Target, at time.Time) {
	l.add("trigger(%v)%s", !at.IsZero(), l.other(t.State))
}
func (l *ruleLog) Gap(t *catchup.Target, _ time.Time) { l.add("gap%s", l.other(t.State)) }
func (l *ruleLog) Lost(t *catchup.Target)             { l.add("freeze%s", l.other(t.State)) }
func (l *ruleLog) Forget(t *catchup.Target)           { l.add("forget%s", l.other(t.State)) }
func (l *ruleLog) ObserveLive(t *catchup.Target, r fanout.Route) {
	l.add("live(%s)%s", r.MessageID, l.other(t.State))
}

type sessions chatwoot.Session

func (s sessions) VerifySession(context.Context, chatwoot.ContactInbox, string) (chatwoot.Session, error) {
	return chatwoot.Session(s), nil
}

// The rules of a state change: which lifecycle event is published and what
// catch-up is asked to do.
func TestEntryStateRules(t *testing.T) {
	r, p, _ := newTestRegistry(t)
	l := &ruleLog{}
	r.Wire(l, l, nil)
	sub, _, _ := r.Register(context.Background(), api.Registration{Token: "tok-rules", ContactID: "42", InboxIdentifier: "in", SourceID: "src"})
	s := p.Record(sub.ID)
	e := r.Entry(sub.ID)
	l.st = &e.catchup
	for _, tc := range []struct {
		change cable.Change
		want   string
	}{
		{cable.ChangeConfirmed, "[trigger(false) subscription.confirmed(42)]"},
		{cable.ChangeLost, "[freeze subscription.lost(42)]"},
		{cable.ChangeGap, "[gap]"},
		{cable.ChangeInvalid, "[forget subscription.invalid(42)]"},
		{cable.ChangeRemoved, "[forget subscription.removed(42)]"},
	} {
		s.Owner.State(s, cable.StateChange[*fanout.Sub]{ID: sub.ID, Meta: s, Change: tc.change})
		if got := l.take(); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.change, got, tc.want)
		}
	}
	// A handover is no removal: nothing is announced.
	e.handedOver.Store(true)
	s.Owner.State(s, cable.StateChange[*fanout.Sub]{ID: sub.ID, Meta: s, Change: cable.ChangeRemoved})
	if got := l.take(); got != "[forget]" {
		t.Errorf("handover: %s", got)
	}
	s.Owner.Published(s, fanout.Route{MessageID: "7"})
	s.Owner.Lost(s)
	if got := l.take(); got != "[live(7) gap]" {
		t.Errorf("published, lost: %s", got)
	}
}

// A contact Chatwoot no longer knows (catch-up read a 404) stops its
// subscription.
func TestGoneInvalidates(t *testing.T) {
	r, p, _ := newTestRegistry(t)
	sub, _, _ := r.Register(context.Background(), api.Registration{Token: "tok-gone"})
	r.Gone(sub.ID)
	if in, _ := p.Get(sub.ID); in.State != cable.StateInvalid {
		t.Fatalf("state %v after Gone", in.State)
	}
}

// Verify asks Chatwoot about subscriptions it can check, and only those.
func TestEntryVerify(t *testing.T) {
	r, p, _ := newTestRegistry(t)
	ctx := context.Background()
	byToken, _, _ := r.Register(ctx, api.Registration{Token: "tok-only"})
	full, _, _ := r.Register(ctx, api.Registration{Token: "tok-full", InboxIdentifier: "in", SourceID: "src"})
	for _, tc := range []struct {
		id      string
		session chatwoot.Session
		want    cable.Verdict
	}{
		{byToken.ID, chatwoot.SessionGone, cable.VerdictUnknown},
		{full.ID, chatwoot.SessionGone, cable.VerdictInvalid},
		{full.ID, chatwoot.SessionMismatch, cable.VerdictInvalid},
		{full.ID, chatwoot.SessionValid, cable.VerdictValid},
	} {
		r.Wire(noEvents{}, noCatchUp{}, sessions(tc.session))
		s := p.Record(tc.id)
		if v, err := fanout.Verifier.Verify(ctx, tc.id, s); v != tc.want || err != nil {
			t.Errorf("%s, session %v: %v, %v; want %v", tc.id, tc.session, v, err, tc.want)
		}
	}
}

// Prune removes what a source of registrations no longer lists, and only
// subscriptions of that origin.
func TestPrune(t *testing.T) {
	r, p, st := newTestRegistry(t)
	ctx := context.Background()
	keep, _, _ := r.Register(ctx, api.Registration{Token: "tok-keep", Origin: "file"})
	gone, _, _ := r.Register(ctx, api.Registration{Token: "tok-gone", Origin: "file"})
	other, _, _ := r.Register(ctx, api.Registration{Token: "tok-api", Origin: "api"})
	n, err := r.Prune(ctx, "file", map[string]bool{keep.ID: true})
	if err != nil || n != 1 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	for id, want := range map[string]bool{keep.ID: true, gone.ID: false, other.ID: true} {
		_, err := st.GetSubscription(ctx, id)
		if (err == nil) != want || p.Has(id) != want {
			t.Errorf("%s: stored %v, subscribed %v, want %v", id, err == nil, p.Has(id), want)
		}
	}
}

// heldGets is a store whose GetSubscription can be held, to interleave a
// learned-ids write with a removal.
type heldGets struct {
	store.Store
	hold    atomic.Bool
	inGet   chan struct{}
	release chan struct{}
}

func (h *heldGets) GetSubscription(ctx context.Context, id string) (store.Subscription, error) {
	rec, err := h.Store.GetSubscription(ctx, id)
	if h.hold.CompareAndSwap(true, false) {
		close(h.inGet) // read, not yet written back
		<-h.release
	}
	return rec, err
}

// A removal while the learned ids of the subscription are being written
// stays a removal: the write does not put the record back.
func TestRemoveDuringLearnedWrite(t *testing.T) {
	_, _, st := newTestRegistry(t)
	hg := &heldGets{Store: st, inGet: make(chan struct{}), release: make(chan struct{})}
	r := New(hg, nil)
	r.Attach(newFakePool())
	ctx := context.Background()
	sub, _, err := r.Register(ctx, api.Registration{Token: "tok-race"})
	if err != nil {
		t.Fatal(err)
	}
	hg.hold.Store(true)
	learn(r, sub.ID, fanout.Hints{AccountID: "1"}, time.Time{})
	<-hg.inGet // the learned-ids write has read the record
	removed := make(chan error, 1)
	go func() { removed <- r.Remove(ctx, sub.ID) }()
	select {
	case err := <-removed: // without the fix the removal does not wait
		close(hg.release)
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(100 * time.Millisecond):
		close(hg.release)
		if err := <-removed; err != nil {
			t.Fatal(err)
		}
	}
	r.Close() // the learned-ids write is done
	if _, err := st.GetSubscription(ctx, sub.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after the removal the record reads %v", err)
	}
}

// Catch-up's state hangs off the record: every Meta of the subscription,
// before and after a registration that changes its facts, points to it.
func TestEntryCatchupStateStable(t *testing.T) {
	r, _, _ := newTestRegistry(t)
	ctx := context.Background()
	sub, _, _ := r.Register(ctx, api.Registration{Token: "tok-state"})
	e := r.Entry(sub.ID)
	first := e.Meta()
	if _, _, err := r.Register(ctx, api.Registration{Token: "tok-state", InboxIdentifier: "in", SourceID: "src"}); err != nil {
		t.Fatal(err)
	}
	if r.Entry(sub.ID) != e || e.Meta() == first {
		t.Fatal("the registration did not update the record's facts")
	}
	for i, m := range []*Meta{first, e.Meta()} {
		if m.State != &e.catchup {
			t.Fatalf("Meta %d does not point to the record's catch-up state", i)
		}
	}
}

// Published runs for every event NATS holds: it allocates nothing, and a
// subscription registered by token alone (no catch-up facts) reaches no
// catch-up cursor.
func TestEntryPublishedAllocatesNothing(t *testing.T) {
	r, p, _ := newTestRegistry(t)
	l := &ruleLog{}
	r.Wire(l, l, nil)
	full, _, _ := r.Register(context.Background(), api.Registration{Token: "tok-full", ContactID: "42", InboxIdentifier: "in", SourceID: "src"})
	bare, _, _ := r.Register(context.Background(), api.Registration{Token: "tok-bare"})
	r.Wire(l, noCatchUp{}, nil) // allocates nothing itself
	for _, id := range []string{full.ID, bare.ID} {
		s := p.Record(id)
		if n := testing.AllocsPerRun(100, func() { s.Owner.Published(s, fanout.Route{MessageID: "7"}) }); n != 0 {
			t.Errorf("%s: %.0f allocations per Published", id, n)
		}
	}
	r.Wire(l, l, nil)
	s := p.Record(bare.ID)
	s.Owner.Published(s, fanout.Route{MessageID: "8"})
	if got := l.take(); got != "[]" {
		t.Errorf("token-only subscription reached catch-up: %s", got)
	}
}
