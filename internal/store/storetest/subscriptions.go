package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/store"
)

func sampleSubscription(id string) store.Subscription {
	return store.Subscription{
		ID:              id,
		Token:           "tok-" + id,
		InboxIdentifier: "inbox-ident",
		SourceID:        "src-" + id,
		ContactID:       "42",
		InboxID:         "7",
		AccountID:       "1",
		Origin:          store.OriginAPI,
	}
}

func putSub(t *testing.T, s store.Store, sub store.Subscription) (store.Subscription, bool) {
	t.Helper()
	got, created, err := s.PutSubscription(ctx(t), sub)
	mustNoErr(t, err, "PutSubscription "+sub.ID)
	return got, created
}

// sameSubscription compares every field, times with Equal.
func sameSubscription(a, b store.Subscription) bool {
	ta := []time.Time{a.CreatedAt, a.UpdatedAt, a.LastActivityAt}
	tb := []time.Time{b.CreatedAt, b.UpdatedAt, b.LastActivityAt}
	for i := range ta {
		if !ta[i].Equal(tb[i]) {
			return false
		}
	}
	a.CreatedAt, a.UpdatedAt, a.LastActivityAt = time.Time{}, time.Time{}, time.Time{}
	b.CreatedAt, b.UpdatedAt, b.LastActivityAt = time.Time{}, time.Time{}, time.Time{}
	return a == b
}

// dump formats a subscription for failure messages, credentials included:
// test data only.
func dump(s store.Subscription) string {
	return fmt.Sprintf("{ID:%s Token:%s Inbox:%s Source:%s Contact:%s InboxID:%s Account:%s Origin:%s Created:%s Updated:%s Activity:%s}",
		s.ID, s.Token, s.InboxIdentifier, s.SourceID, s.ContactID, s.InboxID, s.AccountID, s.Origin,
		s.CreatedAt.Format(time.RFC3339Nano), s.UpdatedAt.Format(time.RFC3339Nano), s.LastActivityAt.Format(time.RFC3339Nano))
}

func testSubscriptionUpsert(t *testing.T, b *Backend) {
	s := b.Store
	first, created := putSub(t, s, sampleSubscription("sub-a"))
	if !created {
		t.Fatal("first put: created = false, want true")
	}
	if first.CreatedAt.IsZero() || first.UpdatedAt.IsZero() {
		t.Fatalf("first put: timestamps not set: %s", dump(first))
	}
	if b.Advance != nil {
		b.Advance(time.Second)
	}
	upd := sampleSubscription("sub-a")
	upd.ContactID = "43"
	upd.CreatedAt = first.CreatedAt.Add(-time.Hour) // ignored: created_at is kept from the first put
	second, created := putSub(t, s, upd)
	if created {
		t.Fatal("second put: created = true, want false")
	}
	if !second.CreatedAt.Equal(first.CreatedAt) {
		t.Fatalf("second put moved CreatedAt: %v -> %v", first.CreatedAt, second.CreatedAt)
	}
	if second.UpdatedAt.Before(first.UpdatedAt) {
		t.Fatalf("UpdatedAt went back: %v -> %v", first.UpdatedAt, second.UpdatedAt)
	}
	if b.Advance != nil && !second.UpdatedAt.After(first.UpdatedAt) {
		t.Fatalf("UpdatedAt not refreshed after 1s: %v -> %v", first.UpdatedAt, second.UpdatedAt)
	}
	got, err := s.GetSubscription(ctx(t), "sub-a")
	mustNoErr(t, err, "GetSubscription")
	if got.ContactID != "43" || !sameSubscription(got, second) {
		t.Fatalf("Get = %s, want %s", dump(got), dump(second))
	}
	if n, err := s.CountSubscriptions(ctx(t)); err != nil || n != 1 {
		t.Fatalf("Count = %d, %v; want 1", n, err)
	}
}

func testSubscriptionRoundTrip(t *testing.T, b *Backend) {
	s := b.Store
	in := sampleSubscription("sub-rt")
	in.CreatedAt = time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))
	in.LastActivityAt = time.Date(2024, 5, 6, 7, 8, 9, 987654321, time.UTC)
	out, created := putSub(t, s, in)
	if !created {
		t.Fatal("created = false")
	}
	want := in
	want.CreatedAt = in.CreatedAt.Truncate(time.Microsecond)
	want.LastActivityAt = in.LastActivityAt.Truncate(time.Microsecond)
	want.UpdatedAt = out.UpdatedAt
	if !sameSubscription(out, want) {
		t.Fatalf("Put returned %s, want %s", dump(out), dump(want))
	}
	got, err := s.GetSubscription(ctx(t), in.ID)
	mustNoErr(t, err, "GetSubscription")
	if !sameSubscription(got, out) {
		t.Fatalf("Get = %s, want %s", dump(got), dump(out))
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt location = %v, want UTC", got.CreatedAt.Location())
	}
	// Ids with separators and non-ASCII bytes are opaque.
	odd := sampleSubscription("a:b|c/ü")
	putSub(t, s, odd)
	if got, err := s.GetSubscription(ctx(t), odd.ID); err != nil || got.Token != odd.Token {
		t.Fatalf("odd id: Get = %s, %v", dump(got), err)
	}
}

func testSubscriptionNotFound(t *testing.T, b *Backend) {
	s := b.Store
	_, err := s.GetSubscription(ctx(t), "missing")
	wantErr(t, err, store.ErrNotFound, "Get missing")
	wantErr(t, s.DeleteSubscription(ctx(t), "missing"), store.ErrNotFound, "Delete missing")
	wantErr(t, s.TouchSubscription(ctx(t), "missing", time.Now()), store.ErrNotFound, "Touch missing")
	putSub(t, s, sampleSubscription("x"))
	mustNoErr(t, s.DeleteSubscription(ctx(t), "x"), "Delete")
	_, err = s.GetSubscription(ctx(t), "x")
	wantErr(t, err, store.ErrNotFound, "Get deleted")
	wantErr(t, s.DeleteSubscription(ctx(t), "x"), store.ErrNotFound, "Delete twice")
	if n, err := s.CountSubscriptions(ctx(t)); err != nil || n != 0 {
		t.Fatalf("Count = %d, %v; want 0", n, err)
	}
	// Re-registering after a delete creates again.
	if _, created := putSub(t, s, sampleSubscription("x")); !created {
		t.Fatal("put after delete: created = false")
	}
}

func testSubscriptionActivity(t *testing.T, b *Backend) {
	s := b.Store
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	sub := sampleSubscription("act")
	sub.LastActivityAt = t0
	putSub(t, s, sub)
	steps := []struct {
		name string
		op   func() error
		want time.Time
	}{
		{"touch forward", func() error { return s.TouchSubscription(ctx(t), "act", t0.Add(time.Minute)) }, t0.Add(time.Minute)},
		{"touch back ignored", func() error { return s.TouchSubscription(ctx(t), "act", t0) }, t0.Add(time.Minute)},
		{"put without activity keeps it", func() error {
			_, _, err := s.PutSubscription(ctx(t), sampleSubscription("act"))
			return err
		}, t0.Add(time.Minute)},
		{"put with older activity keeps it", func() error {
			old := sampleSubscription("act")
			old.LastActivityAt = t0.Add(-time.Hour)
			_, _, err := s.PutSubscription(ctx(t), old)
			return err
		}, t0.Add(time.Minute)},
		{"put with newer activity moves it", func() error {
			nw := sampleSubscription("act")
			nw.LastActivityAt = t0.Add(time.Hour)
			_, _, err := s.PutSubscription(ctx(t), nw)
			return err
		}, t0.Add(time.Hour)},
	}
	for _, st := range steps {
		mustNoErr(t, st.op(), st.name)
		got, err := s.GetSubscription(ctx(t), "act")
		mustNoErr(t, err, st.name+": Get")
		if !got.LastActivityAt.Equal(st.want) {
			t.Fatalf("%s: LastActivityAt = %v, want %v", st.name, got.LastActivityAt, st.want)
		}
	}
}

func testSubscriptionInvalid(t *testing.T, b *Backend) {
	_, _, err := b.Store.PutSubscription(ctx(t), store.Subscription{Token: "t"})
	wantErr(t, err, store.ErrInvalid, "Put without id")
	if n, err := b.Store.CountSubscriptions(ctx(t)); err != nil || n != 0 {
		t.Fatalf("Count after invalid put = %d, %v; want 0", n, err)
	}
}

func subID(i int) string { return fmt.Sprintf("s%04d", i) }

func testListPagination(t *testing.T, b *Backend) {
	s := b.Store
	const n = 23
	for _, i := range rand.New(rand.NewPCG(1, 2)).Perm(n) {
		putSub(t, s, sampleSubscription(subID(i)))
	}
	for _, limit := range []int{1, 5, 10, 23, 50} {
		got := walk(t, s, limit, nil)
		if len(got) != n {
			t.Fatalf("limit %d: walked %d, want %d", limit, len(got), n)
		}
		for i, id := range got {
			if id != subID(i) {
				t.Fatalf("limit %d: item %d = %s, want %s", limit, i, id, subID(i))
			}
		}
	}
	// The last page reports no next cursor; a full page followed by more does.
	page, next, err := s.ListSubscriptions(ctx(t), "", n)
	mustNoErr(t, err, "List all")
	if len(page) != n || next != "" {
		t.Fatalf("List(limit=n) = %d items, next %q; want %d, \"\"", len(page), next, n)
	}
	page, next, err = s.ListSubscriptions(ctx(t), subID(20), 2)
	mustNoErr(t, err, "List after")
	if len(page) != 2 || page[0].ID != subID(21) || next != "" {
		t.Fatalf("List(after s0020, 2) = %v next %q", ids(page), next)
	}
	if page[0].Token != "tok-"+subID(21) {
		t.Fatalf("List returned incomplete record %s", dump(page[0]))
	}
	// An unknown cursor still pages from its position.
	page, _, err = s.ListSubscriptions(ctx(t), "s0010x", 1)
	mustNoErr(t, err, "List after unknown")
	if len(page) != 1 || page[0].ID != subID(11) {
		t.Fatalf("List(after s0010x) = %v, want [s0011]", ids(page))
	}
	// limit <= 0 means the default page size.
	page, _, err = s.ListSubscriptions(ctx(t), "", 0)
	mustNoErr(t, err, "List default")
	if len(page) != min(n, store.DefaultListLimit) {
		t.Fatalf("List(limit 0) = %d items", len(page))
	}
	if c, err := s.CountSubscriptions(ctx(t)); err != nil || c != n {
		t.Fatalf("Count = %d, %v; want %d", c, err, n)
	}
}

func ids(subs []store.Subscription) []string {
	out := make([]string, len(subs))
	for i, s := range subs {
		out[i] = s.ID
	}
	return out
}

// walk pages through every subscription, calling between (if set) after
// each page, and checks that ids strictly increase.
func walk(t *testing.T, s store.Store, limit int, between func()) []string {
	t.Helper()
	var all []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("pagination does not terminate")
		}
		page, next, err := s.ListSubscriptions(ctx(t), after, limit)
		mustNoErr(t, err, "ListSubscriptions")
		if len(page) > limit {
			t.Fatalf("page of %d > limit %d", len(page), limit)
		}
		for _, sub := range page {
			if len(all) > 0 && sub.ID <= all[len(all)-1] {
				t.Fatalf("ids not increasing: %s after %s", sub.ID, all[len(all)-1])
			}
			all = append(all, sub.ID)
		}
		if next == "" {
			return all
		}
		after = next
		if between != nil {
			between()
		}
	}
}

func testListConcurrent(t *testing.T, b *Backend) {
	s := b.Store
	const stable = 60
	for i := range stable {
		putSub(t, s, sampleSubscription(subID(2*i))) // even ids stay for the whole walk
	}
	c, cancel := context.WithCancel(ctx(t))
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { churn(c, s, stable, rand.New(rand.NewPCG(3, 4))) })
	r := rand.New(rand.NewPCG(5, 6))
	for range 3 {
		// Between pages, also write around the walk's position on purpose.
		got := walk(t, s, 7, func() { churnOnce(c, s, stable, r) })
		seen := 0
		for _, id := range got {
			if id == subID(2*seen) {
				seen++
			}
		}
		if seen != stable {
			t.Fatalf("walk under concurrent writes saw %d of %d stable ids: %v", seen, stable, got)
		}
	}
}

// churn inserts and deletes odd ids until ctx ends.
func churn(ctx context.Context, s store.Store, stable int, r *rand.Rand) {
	for ctx.Err() == nil {
		churnOnce(ctx, s, stable, r)
	}
}

func churnOnce(ctx context.Context, s store.Store, stable int, r *rand.Rand) {
	id := subID(2*r.IntN(stable+10) + 1)
	if r.IntN(3) == 0 {
		_ = s.DeleteSubscription(ctx, id)
		return
	}
	_, _, _ = s.PutSubscription(ctx, sampleSubscription(id))
}
