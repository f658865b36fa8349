package storetest

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"github.com/relayhq/relay/internal/store"
)

func putCursor(t *testing.T, s store.Store, c store.Cursor) store.Cursor {
	t.Helper()
	got, err := s.PutCursor(ctx(t), c)
	mustNoErr(t, err, fmt.Sprintf("PutCursor %+v", c))
	return got
}

func cur(sub, conv string, msg int64, status, at string) store.Cursor {
	return store.Cursor{SubscriptionID: sub, ConversationID: conv, LastMessageID: msg, Status: status, UpdatedAt: at}
}

func testCursorAdvanceOnly(t *testing.T, b *Backend) {
	s := b.Store
	putSub(t, s, sampleSubscription("c"))
	_, err := s.GetCursor(ctx(t), "c", "5")
	wantErr(t, err, store.ErrNotFound, "Get before put")
	steps := []struct {
		put  int64
		want int64
	}{{10, 10}, {5, 10}, {0, 10}, {11, 11}, {11, 11}, {store.MaxMessageID, store.MaxMessageID}}
	for _, st := range steps {
		got := putCursor(t, s, cur("c", "5", st.put, "", ""))
		if got.LastMessageID != st.want {
			t.Fatalf("put %d: returned %d, want %d", st.put, got.LastMessageID, st.want)
		}
		stored, err := s.GetCursor(ctx(t), "c", "5")
		mustNoErr(t, err, "GetCursor")
		if stored != got {
			t.Fatalf("put %d: Get = %+v, Put returned %+v", st.put, stored, got)
		}
	}
}

func testCursorConversationStatus(t *testing.T, b *Backend) {
	s := b.Store
	putSub(t, s, sampleSubscription("c"))
	steps := []struct {
		name       string
		status, at string
		wantStatus string
		wantAt     string
	}{
		{"status without time on empty cursor", "open", "", "open", ""},
		{"first time", "pending", "1700000000.5", "pending", "1700000000.5"},
		{"status without time is ignored once a time is known", "resolved", "", "pending", "1700000000.5"},
		{"older time ignored", "open", "1700000000.25", "pending", "1700000000.5"},
		{"newer time applies", "resolved", "1700000001.123456", "resolved", "1700000001.123456"},
		{"same time applies", "snoozed", "1700000001.123456", "snoozed", "1700000001.123456"},
		{"newer time without status keeps status", "", "1700000002", "snoozed", "1700000002"},
		{"numeric not lexical compare", "open", "999999999.9", "snoozed", "1700000002"},
		{"exponent form compares numerically", "open", "1.7000001e9", "open", "1.7000001e9"},
		{"message-only update keeps both", "", "", "open", "1.7000001e9"},
	}
	for i, st := range steps {
		got := putCursor(t, s, cur("c", "9", int64(i), st.status, st.at))
		if got.Status != st.wantStatus || got.UpdatedAt != st.wantAt {
			t.Fatalf("%s: got status %q at %q, want %q at %q", st.name, got.Status, got.UpdatedAt, st.wantStatus, st.wantAt)
		}
		if got.LastMessageID != int64(i) {
			t.Fatalf("%s: message id %d, want %d", st.name, got.LastMessageID, i)
		}
	}
}

func testCursorNeedsSubscription(t *testing.T, b *Backend) {
	_, err := b.Store.PutCursor(ctx(t), cur("nosub", "1", 5, "", ""))
	wantErr(t, err, store.ErrNotFound, "PutCursor without subscription")
	if cs, err := b.Store.ListCursors(ctx(t), "nosub"); err != nil || len(cs) != 0 {
		t.Fatalf("ListCursors = %v, %v; want none", cs, err)
	}
}

// testCursorConcurrent races many writers on a few conversations: every
// cursor must end at the maximum written, and no reader may see it go back.
func testCursorConcurrent(t *testing.T, b *Backend) {
	s := b.Store
	putSub(t, s, sampleSubscription("cc"))
	const writers, puts, convs = 16, 25, 3
	var mu sync.Mutex
	maxMsg := map[string]int64{}
	maxAt := map[string]int{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 99))
			for range puts {
				conv := strconv.Itoa(r.IntN(convs) + 1)
				msg, at := int64(r.IntN(100000)), r.IntN(100000)
				got, err := s.PutCursor(ctx(t), cur("cc", conv, msg, "s"+strconv.Itoa(at), strconv.Itoa(at)))
				if err != nil {
					t.Errorf("PutCursor: %v", err)
					return
				}
				if got.LastMessageID < msg {
					t.Errorf("PutCursor(%d) returned %d", msg, got.LastMessageID)
				}
				mu.Lock()
				maxMsg[conv] = max(maxMsg[conv], msg)
				maxAt[conv] = max(maxAt[conv], at)
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	var rg sync.WaitGroup
	rg.Go(func() { watchMonotonic(t, s, "cc", "1", done) })
	wg.Wait()
	close(done)
	rg.Wait()
	for conv, want := range maxMsg {
		got, err := s.GetCursor(ctx(t), "cc", conv)
		mustNoErr(t, err, "GetCursor")
		wantAt := strconv.Itoa(maxAt[conv])
		if got.LastMessageID != want || got.UpdatedAt != wantAt || got.Status != "s"+wantAt {
			t.Errorf("conversation %s: got %+v, want message %d at %s", conv, got, want, wantAt)
		}
	}
}

func watchMonotonic(t *testing.T, s store.Store, sub, conv string, done <-chan struct{}) {
	var last int64
	for {
		select {
		case <-done:
			return
		default:
		}
		c, err := s.GetCursor(ctx(t), sub, conv)
		if err != nil {
			continue // not written yet
		}
		if c.LastMessageID < last {
			t.Errorf("cursor went back: %d -> %d", last, c.LastMessageID)
			return
		}
		last = c.LastMessageID
	}
}

func testCursorListAndDelete(t *testing.T, b *Backend) {
	s := b.Store
	putSub(t, s, sampleSubscription("l1"))
	putSub(t, s, sampleSubscription("l2"))
	for _, conv := range []string{"10", "9", "100", "1"} {
		putCursor(t, s, cur("l1", conv, 1, "open", "1"))
	}
	putCursor(t, s, cur("l2", "9", 3, "", ""))
	cs, err := s.ListCursors(ctx(t), "l1")
	mustNoErr(t, err, "ListCursors")
	var got []string
	for _, c := range cs {
		if c.SubscriptionID != "l1" || c.LastMessageID != 1 || c.Status != "open" || c.UpdatedAt != "1" {
			t.Fatalf("ListCursors item %+v", c)
		}
		got = append(got, c.ConversationID)
	}
	if fmt.Sprint(got) != "[1 9 10 100]" {
		t.Fatalf("ListCursors order = %v, want [1 9 10 100]", got)
	}
	mustNoErr(t, s.DeleteCursors(ctx(t), "l1"), "DeleteCursors")
	mustNoErr(t, s.DeleteCursors(ctx(t), "l1"), "DeleteCursors again")
	if cs, err := s.ListCursors(ctx(t), "l1"); err != nil || len(cs) != 0 {
		t.Fatalf("after delete: ListCursors = %v, %v", cs, err)
	}
	_, err = s.GetCursor(ctx(t), "l1", "9")
	wantErr(t, err, store.ErrNotFound, "GetCursor after delete")
	// The other subscription's cursors and the subscription itself remain.
	if c, err := s.GetCursor(ctx(t), "l2", "9"); err != nil || c.LastMessageID != 3 {
		t.Fatalf("l2 cursor = %+v, %v", c, err)
	}
	if _, err := s.GetSubscription(ctx(t), "l1"); err != nil {
		t.Fatalf("DeleteCursors removed the subscription: %v", err)
	}
	// A deleted cursor starts from scratch.
	if c := putCursor(t, s, cur("l1", "9", 0, "", "")); c.LastMessageID != 0 || c.Status != "" {
		t.Fatalf("cursor after delete = %+v", c)
	}
}

func testDeleteRemovesCursors(t *testing.T, b *Backend) {
	s := b.Store
	putSub(t, s, sampleSubscription("d"))
	putCursor(t, s, cur("d", "1", 50, "open", "5"))
	putCursor(t, s, cur("d", "2", 60, "", ""))
	mustNoErr(t, s.DeleteSubscription(ctx(t), "d"), "DeleteSubscription")
	_, err := s.PutCursor(ctx(t), cur("d", "1", 70, "", ""))
	wantErr(t, err, store.ErrNotFound, "PutCursor after delete")
	putSub(t, s, sampleSubscription("d"))
	if cs, err := s.ListCursors(ctx(t), "d"); err != nil || len(cs) != 0 {
		t.Fatalf("re-registered subscription has cursors %v, %v", cs, err)
	}
	if c := putCursor(t, s, cur("d", "1", 1, "", "")); c.LastMessageID != 1 {
		t.Fatalf("old cursor survived the delete: %+v", c)
	}
}

func testCursorInvalid(t *testing.T, b *Backend) {
	s := b.Store
	putSub(t, s, sampleSubscription("v"))
	for _, c := range []store.Cursor{
		cur("", "1", 1, "", ""),
		cur("v", "", 1, "", ""),
		cur("v", "1", -1, "", ""),
		cur("v", "1", store.MaxMessageID+1, "", ""),
		cur("v", "1", 1, "open|x", ""),
		cur("v", "1", 1, "", "yesterday"),
		cur("v", "1", 1, "", "0x10"),
		cur("v", "1", 1, "", "NaN"),
		cur("v", "1", 1, "", "+1"),
	} {
		_, err := s.PutCursor(ctx(t), c)
		wantErr(t, err, store.ErrInvalid, fmt.Sprintf("PutCursor(%+v)", c))
	}
	if cs, err := s.ListCursors(ctx(t), "v"); err != nil || len(cs) != 0 {
		t.Fatalf("invalid puts stored %v, %v", cs, err)
	}
}
