package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/store"
)

func putSubs(t *testing.T, s store.Store, subs []store.Subscription) []store.PutResult {
	t.Helper()
	res, err := s.PutSubscriptions(ctx(t), subs)
	mustNoErr(t, err, fmt.Sprintf("PutSubscriptions of %d", len(subs)))
	if len(res) != len(subs) {
		t.Fatalf("PutSubscriptions of %d returned %d results", len(subs), len(res))
	}
	return res
}

// testSubscriptionBatchPut: every record of a batch gets the PutSubscription
// semantics (CreatedAt kept, UpdatedAt now, LastActivityAt never backwards,
// created per record), in order, and lands in the index.
func testSubscriptionBatchPut(t *testing.T, b *Backend) {
	s := b.Store
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	existing := sampleSubscription("b1")
	existing.LastActivityAt = t0
	first, _ := putSub(t, s, existing)
	if b.Advance != nil {
		b.Advance(time.Second)
	}

	upd := sampleSubscription("b1") // existing: contact changes, created_at and older activity ignored
	upd.ContactID = "99"
	upd.CreatedAt = first.CreatedAt.Add(-time.Hour)
	upd.LastActivityAt = t0.Add(-time.Hour)
	fresh := sampleSubscription("b2") // new, with its own created_at and activity
	fresh.CreatedAt = time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))
	fresh.LastActivityAt = t0.Add(time.Minute)
	plain := sampleSubscription("b3")
	plain.Origin = store.OriginFile
	again := sampleSubscription("b2") // same id later in the batch: sees the record above
	again.InboxID = "8"
	again.CreatedAt = t0.Add(time.Hour)
	again.LastActivityAt = t0 // older than the record above: kept

	res := putSubs(t, s, []store.Subscription{upd, fresh, plain, again})
	if got := []bool{res[0].Created, res[1].Created, res[2].Created, res[3].Created}; !slices.Equal(got, []bool{false, true, true, false}) {
		t.Fatalf("created = %v, want [false true true false]", got)
	}
	for i, r := range res {
		if r.Stored.UpdatedAt.IsZero() || r.Stored.CreatedAt.IsZero() {
			t.Fatalf("result %d: timestamps not set: %s", i, dump(r.Stored))
		}
		if r.Stored.UpdatedAt.Before(first.UpdatedAt) {
			t.Fatalf("result %d: UpdatedAt went back: %v -> %v", i, first.UpdatedAt, r.Stored.UpdatedAt)
		}
		if b.Advance != nil && !r.Stored.UpdatedAt.After(first.UpdatedAt) {
			t.Fatalf("result %d: UpdatedAt not refreshed after 1s: %v", i, r.Stored.UpdatedAt)
		}
	}
	b1 := res[0].Stored
	if !b1.CreatedAt.Equal(first.CreatedAt) || !b1.LastActivityAt.Equal(t0) || b1.ContactID != "99" {
		t.Fatalf("b1 = %s; want CreatedAt %v kept, activity %v kept, contact 99", dump(b1), first.CreatedAt, t0)
	}
	wantCreated := fresh.CreatedAt.UTC().Truncate(time.Microsecond)
	if b2 := res[1].Stored; !b2.CreatedAt.Equal(wantCreated) || !b2.LastActivityAt.Equal(t0.Add(time.Minute)) || b2.InboxID != "7" {
		t.Fatalf("b2 (first) = %s", dump(b2))
	}
	if b2 := res[3].Stored; !b2.CreatedAt.Equal(wantCreated) || !b2.LastActivityAt.Equal(t0.Add(time.Minute)) || b2.InboxID != "8" {
		t.Fatalf("b2 (second) = %s; want created %v and activity %v from the first, inbox 8", dump(b2), wantCreated, t0.Add(time.Minute))
	}
	if b3 := res[2].Stored; !b3.CreatedAt.Equal(b3.UpdatedAt) || !b3.LastActivityAt.IsZero() || b3.Origin != store.OriginFile {
		t.Fatalf("b3 = %s; want CreatedAt = UpdatedAt (now), no activity", dump(b3))
	}
	for _, want := range []store.Subscription{res[0].Stored, res[3].Stored, res[2].Stored} {
		got, err := s.GetSubscription(ctx(t), want.ID)
		mustNoErr(t, err, "GetSubscription "+want.ID)
		if !sameSubscription(got, want) {
			t.Fatalf("Get = %s, want %s", dump(got), dump(want))
		}
		if got.CreatedAt.Location() != time.UTC {
			t.Fatalf("CreatedAt location = %v, want UTC", got.CreatedAt.Location())
		}
	}
	if n, err := s.CountSubscriptions(ctx(t)); err != nil || n != 3 {
		t.Fatalf("Count = %d, %v; want 3", n, err)
	}
	if got := walk(t, s, 2, nil); !slices.Equal(got, []string{"b1", "b2", "b3"}) {
		t.Fatalf("List = %v, want [b1 b2 b3]", got)
	}
	// Single puts see what the batch wrote.
	if _, created := putSub(t, s, sampleSubscription("b3")); created {
		t.Fatal("put after batch: created = true")
	}
	if res, err := s.PutSubscriptions(ctx(t), nil); err != nil || len(res) != 0 {
		t.Fatalf("empty batch = %v, %v", res, err)
	}
}

// testSubscriptionBatchMatchesSingle: a batch stores exactly what the same
// puts one by one store.
func testSubscriptionBatchMatchesSingle(t *testing.T, b *Backend) {
	s := b.Store
	mk := func(prefix string, i int) store.Subscription {
		sub := sampleSubscription(fmt.Sprintf("%s%02d", prefix, i))
		sub.LastActivityAt = time.Date(2025, 1, 1, 0, 0, i, 1500, time.UTC)
		if i%2 == 0 {
			sub.SourceID, sub.InboxIdentifier = "", ""
		}
		return sub
	}
	var batch []store.Subscription
	for i := range 10 {
		single, _ := putSub(t, s, mk("one-", i))
		batch = append(batch, mk("many-", i))
		res := putSubs(t, s, batch[i:])[0]
		if !res.Created {
			t.Fatalf("batch record %d: created = false", i)
		}
		got, err := s.GetSubscription(ctx(t), batch[i].ID)
		mustNoErr(t, err, "Get")
		want := single
		want.ID, want.Token, want.SourceID = res.Stored.ID, res.Stored.Token, res.Stored.SourceID
		if b.realTime() { // "now" differs between the two puts: both are created now
			want.CreatedAt, want.UpdatedAt = res.Stored.UpdatedAt, res.Stored.UpdatedAt
		}
		if !sameSubscription(got, want) || !sameSubscription(res.Stored, want) {
			t.Fatalf("batch stored %s (returned %s), single stored %s", dump(got), dump(res.Stored), dump(single))
		}
	}
}

// testSubscriptionBatchInvalid: one invalid record rejects the batch before
// anything is written, and the error names its index.
func testSubscriptionBatchInvalid(t *testing.T, b *Backend) {
	s := b.Store
	_, err := s.PutSubscriptions(ctx(t), []store.Subscription{sampleSubscription("ok-1"), {Token: "secret-tok"}, sampleSubscription("ok-2")})
	wantErr(t, err, store.ErrInvalid, "batch with an empty id")
	if !strings.Contains(err.Error(), "record 1") {
		t.Fatalf("error does not name the invalid record: %v", err)
	}
	if strings.Contains(err.Error(), "secret-tok") {
		t.Fatalf("error shows a token: %v", err)
	}
	if n, err := s.CountSubscriptions(ctx(t)); err != nil || n != 0 {
		t.Fatalf("Count after invalid batch = %d, %v; want 0", n, err)
	}
}

// testSubscriptionBatchLarge: batches larger than a List page work, and a
// repeated batch updates without creating.
func testSubscriptionBatchLarge(t *testing.T, b *Backend) {
	s := b.Store
	const n = 2500
	subs := make([]store.Subscription, n)
	for i := range subs {
		subs[i] = sampleSubscription(subID(i))
	}
	for round, wantCreated := range []bool{true, false} {
		for i, r := range putSubs(t, s, subs) {
			if r.Created != wantCreated || r.Stored.ID != subs[i].ID {
				t.Fatalf("round %d, record %d: %s created %v, want %s created %v", round, i, r.Stored.ID, r.Created, subs[i].ID, wantCreated)
			}
		}
		if c, err := s.CountSubscriptions(ctx(t)); err != nil || c != n {
			t.Fatalf("round %d: Count = %d, %v; want %d", round, c, err, n)
		}
	}
	if got := walk(t, s, store.MaxListLimit, nil); len(got) != n {
		t.Fatalf("List walked %d, want %d", len(got), n)
	}
}

// testSubscriptionGetMany: GetSubscriptions returns the existing records in
// the order asked, skipping missing ids.
func testSubscriptionGetMany(t *testing.T, b *Backend) {
	s := b.Store
	a, _ := putSub(t, s, sampleSubscription("g-a"))
	c, _ := putSub(t, s, sampleSubscription("g-c"))
	got, err := s.GetSubscriptions(ctx(t), []string{"g-c", "g-missing", "g-a"})
	mustNoErr(t, err, "GetSubscriptions")
	if len(got) != 2 || !sameSubscription(got[0], c) || !sameSubscription(got[1], a) {
		t.Fatalf("GetSubscriptions = %v, want [g-c g-a] as stored", ids(got))
	}
	if got, err := s.GetSubscriptions(ctx(t), []string{"none"}); err != nil || len(got) != 0 {
		t.Fatalf("GetSubscriptions(missing) = %v, %v", ids(got), err)
	}
	if got, err := s.GetSubscriptions(ctx(t), nil); err != nil || len(got) != 0 {
		t.Fatalf("GetSubscriptions(nil) = %v, %v", ids(got), err)
	}
	mustNoErr(t, s.DeleteSubscription(ctx(t), "g-a"), "Delete")
	if got, err := s.GetSubscriptions(ctx(t), []string{"g-a", "g-c"}); err != nil || len(got) != 1 || got[0].ID != "g-c" {
		t.Fatalf("GetSubscriptions after delete = %v, %v", ids(got), err)
	}
}
