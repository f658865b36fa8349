package registry

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/relayhq/relay/internal/api"
	"github.com/relayhq/relay/internal/cable"
	"github.com/relayhq/relay/internal/fanout"
	"github.com/relayhq/relay/internal/registry/registrytest"
	"github.com/relayhq/relay/internal/store"
	"github.com/relayhq/relay/internal/store/bolt"
)

// fakePool is the test stand-in for the cable pool.
type fakePool = registrytest.Pool

func newFakePool() *fakePool { return registrytest.NewPool() }

// learn does what the fan-out does with a live event of subscription id
// naming the ids of h: a message event when at is set (activity), else a
// presence event.
func learn(r *Registry, id string, h fanout.Hints, at time.Time) {
	e := r.Entry(id)
	rt := fanout.Route{Kind: fanout.KindPresence, AccountID: orUnknown(h.AccountID), InboxID: orUnknown(h.InboxID), ContactID: orUnknown(h.ContactID)}
	if !at.IsZero() {
		rt.Kind = fanout.KindMessage
	}
	if e.Sub().Observe(&rt, at) {
		e.Learned(e.Sub())
	}
}

func orUnknown(v string) string {
	if v == "" {
		return fanout.Unknown
	}
	return v
}

func newTestRegistry(t *testing.T) (*Registry, *fakePool, store.Store) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "relay.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := New(st, nil)
	p := newFakePool()
	r.Attach(p)
	t.Cleanup(r.Close)
	return r, p, st
}

func TestRegisterIsIdempotentAndMerges(t *testing.T) {
	r, p, st := newTestRegistry(t)
	ctx := context.Background()
	sub, created, err := r.Register(ctx, api.Registration{Token: "tok-1", Origin: api.OriginAPI})
	if err != nil || !created || sub.ID != cable.SubscriptionID("tok-1") || sub.CatchUp {
		t.Fatalf("first register: %+v %v %v", sub, created, err)
	}
	sub, created, err = r.Register(ctx, api.Registration{Token: "tok-1", InboxIdentifier: "inbox", SourceID: "src", ContactID: "7", Origin: api.OriginProxy})
	if err != nil || created || !sub.CatchUp || sub.ContactID != "7" || sub.Origin != api.OriginAPI {
		t.Fatalf("second register: %+v %v %v", sub, created, err)
	}
	rec, _ := st.GetSubscription(ctx, sub.ID)
	if rec.SourceID != "src" || rec.InboxIdentifier != "inbox" || rec.Token != "tok-1" {
		t.Fatalf("stored %v", rec)
	}
	if m := MetaOf(p.Record(sub.ID)); m == nil || m.SourceID != "src" || !m.CatchUp() {
		t.Fatalf("pool meta %+v", m)
	}
}

func TestRegisterRejectsBadTokenWithoutStoring(t *testing.T) {
	r, _, st := newTestRegistry(t)
	for _, tok := range []string{"", "bad\ntoken"} {
		if _, _, err := r.Register(context.Background(), api.Registration{Token: tok}); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("Register(%q) = %v", tok, err)
		}
	}
	if n, _ := st.CountSubscriptions(context.Background()); n != 0 {
		t.Fatalf("%d records stored", n)
	}
}

// TestLearnFillsWithoutLosingRegistration: ids learned from events land in
// the live meta at once and in the record in the background, and never
// erase what a registration wrote meanwhile.
func TestLearnFillsWithoutLosingRegistration(t *testing.T) {
	r, p, st := newTestRegistry(t)
	ctx := context.Background()
	sub, _, _ := r.Register(ctx, api.Registration{Token: "tok-2"})
	learn(r, sub.ID, fanout.Hints{AccountID: "1", InboxID: "3", ContactID: fanout.Unknown}, time.Time{})
	r.Register(ctx, api.Registration{Token: "tok-2", InboxIdentifier: "inbox", SourceID: "src"})
	m, h := MetaOf(p.Record(sub.ID)), p.Record(sub.ID).Hints()
	if h.AccountID != "1" || h.InboxID != "3" || h.ContactID != "" || m.SourceID != "src" {
		t.Fatalf("meta %+v, hints %+v", m, h)
	}
	learn(r, sub.ID, fanout.Hints{AccountID: "9", ContactID: "42"}, time.Time{}) // account known: only the contact is new
	r.Close()                                                                    // writes what is queued
	rec, err := st.GetSubscription(ctx, sub.ID)
	if err != nil || rec.AccountID != "1" || rec.InboxID != "3" || rec.ContactID != "42" || rec.SourceID != "src" {
		t.Fatalf("stored %v, %v", rec, err)
	}
}

// Live message and conversation events set the subscription's last
// activity; a stored LastActivityAt seeds it at registration.
func TestLearnRecordsActivity(t *testing.T) {
	r, _, st := newTestRegistry(t)
	ctx := context.Background()
	sub, _, _ := r.Register(ctx, api.Registration{Token: "tok-act"})
	e := r.Entry(sub.ID)
	if !e.LastActivity().IsZero() {
		t.Fatalf("activity %v before any event", e.LastActivity())
	}
	learn(r, sub.ID, fanout.Hints{}, time.Time{}) // presence: no activity
	if !e.LastActivity().IsZero() {
		t.Fatal("an event without activity moved it")
	}
	at := time.Unix(1_700_000_000, 0)
	learn(r, sub.ID, fanout.Hints{}, at)
	if !e.LastActivity().Equal(at) {
		t.Fatalf("activity %v, want %v", e.LastActivity(), at)
	}
	if err := st.TouchSubscription(ctx, sub.ID, at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	r.Register(ctx, api.Registration{Token: "tok-act", SourceID: "src"}) // re-reads the record
	if got := e.LastActivity(); !got.Equal(at.Add(time.Hour)) {
		t.Fatalf("activity %v after registering, want the stored %v", got, at.Add(time.Hour))
	}
}

// Hints are substrings of an event's routing string; what Learn keeps for
// the subscription's life must not point into it.
func TestLearnKeepsNoEventMemory(t *testing.T) {
	r, p, _ := newTestRegistry(t)
	sub, _, _ := r.Register(context.Background(), api.Registration{Token: "tok-own"})
	event := strings.Repeat("x", 200) + "17|23|4242"
	learn(r, sub.ID, fanout.Hints{AccountID: event[200:202], InboxID: event[203:205], ContactID: event[206:210]}, time.Time{})
	m := p.Record(sub.ID).Hints()
	if m.AccountID != "17" || m.InboxID != "23" || m.ContactID != "4242" {
		t.Fatalf("meta %+v", m)
	}
	lo := uintptr(unsafe.Pointer(unsafe.StringData(event)))
	hi := lo + uintptr(len(event))
	for name, v := range map[string]string{"account": m.AccountID, "inbox": m.InboxID, "contact": m.ContactID} {
		if at := uintptr(unsafe.Pointer(unsafe.StringData(v))); at >= lo && at < hi {
			t.Errorf("learned %s id points into the event string", name)
		}
	}
}

func TestListFiltersByStateAndPages(t *testing.T) {
	r, p, _ := newTestRegistry(t)
	ctx := context.Background()
	var ids []string
	for i := range 7 {
		sub, _, _ := r.Register(ctx, api.Registration{Token: "tok-list-" + string(rune('a'+i))})
		ids = append(ids, sub.ID)
	}
	for _, id := range ids[:4] {
		p.SetState(id, cable.StateConfirmed)
	}
	var got []string
	cursor := ""
	for {
		page, next, err := r.List(ctx, api.StateConfirmed, cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page {
			if s.State != api.StateConfirmed {
				t.Fatalf("state filter let %+v through", s)
			}
			got = append(got, s.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(got) != 4 {
		t.Fatalf("confirmed = %d, want 4", len(got))
	}
}

func TestLoadAndRemove(t *testing.T) {
	r, _, st := newTestRegistry(t)
	ctx := context.Background()
	sub, _, _ := r.Register(ctx, api.Registration{Token: "tok-3", InboxIdentifier: "i", SourceID: "s"})
	// A new process: a fresh registry over the same store.
	r2 := New(st, nil)
	defer r2.Close()
	p2 := newFakePool()
	r2.Attach(p2)
	if n, err := r2.Load(ctx); err != nil || n != 1 {
		t.Fatalf("Load = %d, %v", n, err)
	}
	if m := MetaOf(p2.Record(sub.ID)); m == nil || m.SourceID != "s" || m.CreatedAt.IsZero() {
		t.Fatalf("restored meta %+v", m)
	}
	if err := r2.Remove(ctx, sub.ID); err != nil {
		t.Fatal(err)
	}
	if p2.Has(sub.ID) {
		t.Fatal("still in the pool")
	}
	if err := r2.Remove(ctx, sub.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second remove = %v", err)
	}
}
