package storetest

import (
	"slices"
	"testing"

	"github.com/relayhq/relay/internal/store"
)

func testFeedLifecycle(t *testing.T, b *Backend) {
	s := b.Store
	f := store.Feed{ID: "feed-b", AccessToken: "secret-b", UserID: 7, Accounts: []int64{1, 2}}
	got, created, err := s.PutFeed(ctx(t), f)
	mustNoErr(t, err, "put")
	if !created || got.CreatedAt.IsZero() || got.AccessToken != "secret-b" {
		t.Fatalf("first put: %v created=%v", got, created)
	}
	_, _, err = s.PutFeed(ctx(t), store.Feed{ID: "feed-a", AccessToken: "secret-a"})
	mustNoErr(t, err, "put a")
	mustNoErr(t, s.AdvanceFeedCursor(ctx(t), "feed-b", 1, 0), "set a zero cursor")
	mustNoErr(t, s.AdvanceFeedCursor(ctx(t), "feed-b", 2, 40), "advance")
	mustNoErr(t, s.AdvanceFeedCursor(ctx(t), "feed-b", 2, 30), "advance back")
	f.UserID = 8
	again, created, err := s.PutFeed(ctx(t), f)
	mustNoErr(t, err, "put again")
	if created || !again.CreatedAt.Equal(got.CreatedAt) || again.UserID != 8 || again.Cursors[2] != 40 {
		t.Fatalf("second put: %v created=%v cursors=%v", again, created, again.Cursors)
	}
	read, err := s.GetFeed(ctx(t), "feed-b")
	mustNoErr(t, err, "get")
	if _, zero := read.Cursors[1]; !zero || read.AccessToken != "secret-b" || !slices.Equal(read.Accounts, []int64{1, 2}) || read.Cursors[2] != 40 || read.UserID != 8 {
		t.Fatalf("get: %v cursors=%v", read, read.Cursors)
	}
	list, err := s.ListFeeds(ctx(t))
	mustNoErr(t, err, "list")
	if len(list) != 2 || list[0].ID != "feed-a" || list[1].ID != "feed-b" {
		t.Fatalf("list: %v", list)
	}
	mustNoErr(t, s.DeleteFeed(ctx(t), "feed-b"), "delete")
	_, err = s.GetFeed(ctx(t), "feed-b")
	wantErr(t, err, store.ErrNotFound, "get deleted")
	wantErr(t, s.DeleteFeed(ctx(t), "feed-b"), store.ErrNotFound, "delete twice")
	wantErr(t, s.AdvanceFeedCursor(ctx(t), "feed-b", 2, 50), store.ErrNotFound, "advance deleted")
	_, _, err = s.PutFeed(ctx(t), store.Feed{ID: "feed-b", AccessToken: "secret-b"})
	mustNoErr(t, err, "put after delete")
	read, err = s.GetFeed(ctx(t), "feed-b")
	mustNoErr(t, err, "get re-added")
	if len(read.Cursors) != 0 {
		t.Fatalf("cursors survived the delete: %v", read.Cursors)
	}
	_, _, err = s.PutFeed(ctx(t), store.Feed{ID: "x"})
	wantErr(t, err, store.ErrInvalid, "put without token")
}
