package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/relayhq/relay/internal/store"
)

func testPersistence(t *testing.T, b *Backend) {
	if b.Reopen == nil {
		t.Skip("backend does not support reopening")
	}
	s := b.Store
	sub, _ := putSub(t, s, sampleSubscription("p"))
	putCursor(t, s, cur("p", "3", 77, "open", "1700000000.1"))
	reserve(t, s, "idem", longTTL)
	mustNoErr(t, s.CompleteIdempotency(ctx(t), "idem", []byte("resp"), longTTL), "Complete")
	reserve(t, s, "pending", longTTL)
	acquire(t, s, "lease", "r1", longTTL)
	mustNoErr(t, s.Heartbeat(ctx(t), "r1", longTTL), "Heartbeat")
	mustNoErr(t, s.Close(), "Close")

	s = b.Reopen(t)
	t.Cleanup(func() { s.Close() })
	got, err := s.GetSubscription(ctx(t), "p")
	if err != nil || !sameSubscription(got, sub) {
		t.Fatalf("after reopen: Get = %s, %v; want %s", dump(got), err, dump(sub))
	}
	if c, err := s.GetCursor(ctx(t), "p", "3"); err != nil || c != cur("p", "3", 77, "open", "1700000000.1") {
		t.Fatalf("after reopen: cursor = %+v, %v", c, err)
	}
	wantState(t, s, "idem", store.IdempotencyCompleted, []byte("resp"))
	wantState(t, s, "pending", store.IdempotencyInProgress, nil)
	wantHolder(t, s, "lease", "r1")
	if m := members(t, s); !slices.Equal(m, []string{"r1"}) {
		t.Fatalf("after reopen: Members = %v", m)
	}
	if n, err := s.CountSubscriptions(ctx(t)); err != nil || n != 1 {
		t.Fatalf("after reopen: Count = %d, %v", n, err)
	}
	// The reopened store is writable and keeps the advance-only rule.
	if c := putCursor(t, s, cur("p", "3", 5, "", "")); c.LastMessageID != 77 {
		t.Fatalf("after reopen: cursor moved back to %d", c.LastMessageID)
	}
}

func testPingAndClose(t *testing.T, b *Backend) {
	s := b.Store
	mustNoErr(t, s.Ping(ctx(t)), "Ping")
	mustNoErr(t, s.Close(), "Close")
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v, want nil", err)
	}
	wantErr(t, s.Ping(ctx(t)), store.ErrClosed, "Ping after Close")
	_, err := s.GetSubscription(ctx(t), "x")
	wantErr(t, err, store.ErrClosed, "Get after Close")
	_, _, err = s.PutSubscription(ctx(t), sampleSubscription("x"))
	wantErr(t, err, store.ErrClosed, "Put after Close")
	_, err = s.PutSubscriptions(ctx(t), []store.Subscription{sampleSubscription("x")})
	wantErr(t, err, store.ErrClosed, "batch Put after Close")
	_, err = s.GetSubscriptions(ctx(t), []string{"x"})
	wantErr(t, err, store.ErrClosed, "batch Get after Close")
}

func testCanceledContext(t *testing.T, b *Backend) {
	s := b.Store
	putSub(t, s, sampleSubscription("x"))
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	_, err := s.GetSubscription(c, "x")
	wantErr(t, err, context.Canceled, "Get with canceled context")
	_, _, err = s.PutSubscription(c, sampleSubscription("y"))
	wantErr(t, err, context.Canceled, "Put with canceled context")
	_, err = s.PutSubscriptions(c, []store.Subscription{sampleSubscription("y")})
	wantErr(t, err, context.Canceled, "batch Put with canceled context")
	_, err = s.GetSubscriptions(c, []string{"x"})
	wantErr(t, err, context.Canceled, "batch Get with canceled context")
	_, err = s.AcquireLease(c, "l", "h", time.Minute)
	wantErr(t, err, context.Canceled, "AcquireLease with canceled context")
	if _, err := s.GetSubscription(ctx(t), "y"); err == nil {
		t.Fatal("a put with a canceled context was stored")
	}
}
